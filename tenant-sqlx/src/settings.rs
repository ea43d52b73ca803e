use std::borrow::Cow;

use tenant_core::Field;

/// The names of the PostgreSQL settings (GUCs) that carry the context inside
/// a transaction, and that the RLS policies read.
///
/// ```
/// use tenant_sqlx::Settings;
/// let s = Settings::default();
/// assert_eq!(s.tenant(), "app.current_tenant");
/// let custom = Settings::default().with_tenant("myapp.tenant");
/// assert_eq!(custom.tenant(), "myapp.tenant");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    tenant: Cow<'static, str>,
    agent: Cow<'static, str>,
    conversation: Cow<'static, str>,
    collection: Cow<'static, str>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tenant: Cow::Borrowed("app.current_tenant"),
            agent: Cow::Borrowed("app.current_agent"),
            conversation: Cow::Borrowed("app.current_conversation"),
            collection: Cow::Borrowed("app.current_collection"),
        }
    }
}

impl Settings {
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
    pub fn with_tenant(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.tenant = name.into();
        self
    }
    /// Renames the agent setting.
    pub fn with_agent(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.agent = name.into();
        self
    }
    /// Renames the conversation setting.
    pub fn with_conversation(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.conversation = name.into();
        self
    }
    /// Renames the collection setting.
    pub fn with_collection(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.collection = name.into();
        self
    }
}
