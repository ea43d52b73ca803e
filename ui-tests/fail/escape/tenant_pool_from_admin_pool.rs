//! Turning the admin pool (a role that bypasses RLS) into a `TenantPool`
//! with `Into`, so that tenant code would run on privileged sessions. There
//! is no conversion between the two pools.
use tenant_sqlx::{AdminPool, TenantPool};

fn as_tenant_pool(admin: AdminPool) -> TenantPool {
    admin.into()
}

fn main() {
    let _ = as_tenant_pool;
}
