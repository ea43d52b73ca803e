use std::borrow::Cow;

use tenant_core::Field;

/// The names of the PostgreSQL settings (GUCs) that carry the context inside
/// a transaction, and that the RLS policies read.
///
/// It holds names, not values: [`rename_tenant`](Self::rename_tenant)
/// changes which setting carries the tenant, while the tenant itself comes
/// from the context a transaction is opened with
/// ([`Ctx::with_tenant`](tenant_core::Ctx::with_tenant) sets a value).
///
/// ```
/// use tenant_sqlx::SettingNames;
/// let s = SettingNames::default();
/// assert_eq!(s.tenant(), "app.current_tenant");
/// let custom = SettingNames::default().rename_tenant("myapp.tenant");
/// assert_eq!(custom.tenant(), "myapp.tenant");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingNames {
    tenant: Cow<'static, str>,
    agent: Cow<'static, str>,
    conversation: Cow<'static, str>,
    collection: Cow<'static, str>,
}

impl Default for SettingNames {
    fn default() -> Self {
        SettingNames {
            tenant: Cow::Borrowed("app.current_tenant"),
            agent: Cow::Borrowed("app.current_agent"),
            conversation: Cow::Borrowed("app.current_conversation"),
            collection: Cow::Borrowed("app.current_collection"),
        }
    }
}

impl SettingNames {
    /// The setting that carries the tenant (`app.current_tenant`).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    /// The setting that carries the agent (`app.current_agent`).
    pub fn agent(&self) -> &str {
        &self.agent
    }
    /// The setting that carries the conversation (`app.current_conversation`).
    pub fn conversation(&self) -> &str {
        &self.conversation
    }
    /// The setting that carries the collection (`app.current_collection`).
    pub fn collection(&self) -> &str {
        &self.collection
    }
    /// The setting for `field`.
    pub fn for_field(&self, field: Field) -> &str {
        match field {
            Field::Tenant => self.tenant(),
            Field::Agent => self.agent(),
            Field::Conversation => self.conversation(),
            Field::Collection => self.collection(),
        }
    }
    /// Renames the tenant setting. A custom setting needs a dot
    /// (`prefix.name`), as PostgreSQL requires of placeholder variables.
    pub fn rename_tenant(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.tenant = name.into();
        self
    }
    /// Renames the agent setting.
    pub fn rename_agent(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.agent = name.into();
        self
    }
    /// Renames the conversation setting.
    pub fn rename_conversation(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.conversation = name.into();
        self
    }
    /// Renames the collection setting.
    pub fn rename_collection(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.collection = name.into();
        self
    }
}
