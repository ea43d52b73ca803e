//! Building the `Begin` future of `TenantPool::begin` by hand, around a
//! future that yields a transaction no pool opened. Its field is private:
//! only `TenantPool::begin` makes one.
use std::future::Future;
use std::pin::Pin;

use tenant_sqlx::{Begin, TenantTx};

type Forged<'c> =
    Pin<Box<dyn Future<Output = Result<TenantTx<'c>, tenant_sqlx::Error>> + Send + 'c>>;

fn forge(fut: Forged<'static>) -> Begin<'static> {
    Begin { inner: fut }
}

fn main() {
    let _ = forge;
}
