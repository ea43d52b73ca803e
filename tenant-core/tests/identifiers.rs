//! Every bad identifier gives the one error that names its fault, for every
//! identifier type and through `ContextError` for every field.

use tenant_core::{
    AgentId, CollectionId, ContextError, ConversationId, Ctx, Field, IdError, TenantId, Validated,
};

/// (what it is, the text, the error it must give)
fn bad_identifiers() -> Vec<(&'static str, String, IdError)> {
    use IdError::*;
    let s = |x: &str| x.to_owned();
    vec![
        ("empty", s(""), Empty),
        ("one space", s(" "), Whitespace { index: 0 }),
        ("whitespace only", s("   "), Whitespace { index: 0 }),
        ("leading space", s(" acme"), Whitespace { index: 0 }),
        ("trailing space", s("acme "), Whitespace { index: 4 }),
        ("a space inside", s("ac me"), Whitespace { index: 2 }),
        ("Default", s("Default"), Reserved { word: "default" }),
        ("DEFAULT", s("DEFAULT"), Reserved { word: "default" }),
        ("NULL", s("NULL"), Reserved { word: "null" }),
        ("nUlL", s("nUlL"), Reserved { word: "null" }),
        ("nOnE", s("nOnE"), Reserved { word: "none" }),
        ("UNDEFINED", s("UNDEFINED"), Reserved { word: "undefined" }),
        ("Undefined", s("Undefined"), Reserved { word: "undefined" }),
        ("star", s("*"), Reserved { word: "*" }),
        ("upper case", s("ACME"), UpperCase { index: 0, ch: 'A' }),
        (
            "capitalised",
            s("Acme-corp"),
            UpperCase { index: 0, ch: 'A' },
        ),
        (
            "one capital inside",
            s("acMe"),
            UpperCase { index: 2, ch: 'M' },
        ),
        (
            "capital last",
            s("agent-7X"),
            UpperCase { index: 7, ch: 'X' },
        ),
        (
            "upper-case UUID",
            s("3F2504E0-4F89-11D3-9A0C-0305E82C3301"),
            UpperCase { index: 1, ch: 'F' },
        ),
        (
            "near a reserved word",
            s("Defaults"),
            UpperCase { index: 0, ch: 'D' },
        ),
        (
            "capital before a forbidden char",
            s("A;b"),
            UpperCase { index: 0, ch: 'A' },
        ),
        ("65 bytes", "a".repeat(65), TooLong { len: 65 }),
        ("1000 bytes", "7".repeat(1000), TooLong { len: 1000 }),
        (
            "33 two-byte chars (66 bytes)",
            "é".repeat(33),
            TooLong { len: 66 },
        ),
        ("NUL", s("ac\0me"), ControlChar { index: 2, ch: '\0' }),
        ("NUL alone", s("\0"), ControlChar { index: 0, ch: '\0' }),
        ("CR", s("acme\r"), ControlChar { index: 4, ch: '\r' }),
        ("LF", s("acme\nx"), ControlChar { index: 4, ch: '\n' }),
        (
            "CRLF header injection",
            s("acme\r\nX-Tenant-ID: evil"),
            ControlChar { index: 4, ch: '\r' },
        ),
        ("TAB", s("\tacme"), ControlChar { index: 0, ch: '\t' }),
        (
            "DEL",
            s("acme\x7f"),
            ControlChar {
                index: 4,
                ch: '\x7f',
            },
        ),
        (
            "ESC",
            s("a\x1bb"),
            ControlChar {
                index: 1,
                ch: '\x1b',
            },
        ),
        ("single quote", s("ac'me"), Quote { index: 2, ch: '\'' }),
        (
            "SQL injection",
            s("acme'; DROP TABLE t; --"),
            Quote { index: 4, ch: '\'' },
        ),
        ("double quote", s("\"acme\""), Quote { index: 0, ch: '"' }),
        ("backtick", s("ac`me"), Quote { index: 2, ch: '`' }),
        (
            "backslash",
            s("ac\\me"),
            ForbiddenChar { index: 2, ch: '\\' },
        ),
        ("semicolon", s("acme;"), ForbiddenChar { index: 4, ch: ';' }),
        ("percent", s("%27"), ForbiddenChar { index: 0, ch: '%' }),
        ("slash", s("a/b"), ForbiddenChar { index: 1, ch: '/' }),
        (
            "path traversal",
            s("../etc"),
            ForbiddenChar { index: 2, ch: '/' },
        ),
        (
            "comma",
            s("acme,globex"),
            ForbiddenChar { index: 4, ch: ',' },
        ),
        ("equals", s("a=b"), ForbiddenChar { index: 1, ch: '=' }),
        ("at sign", s("a@b"), ForbiddenChar { index: 1, ch: '@' }),
        ("plus", s("a+b"), ForbiddenChar { index: 1, ch: '+' }),
        (
            "star inside",
            s("acme*"),
            ForbiddenChar { index: 4, ch: '*' },
        ),
        (
            "Cyrillic a first",
            s("\u{430}cme"),
            NonAscii {
                index: 0,
                ch: '\u{430}',
            },
        ),
        (
            "Cyrillic e last",
            s("acm\u{435}"),
            NonAscii {
                index: 3,
                ch: '\u{435}',
            },
        ),
        (
            "Kelvin sign",
            s("\u{212A}elvin"),
            NonAscii {
                index: 0,
                ch: '\u{212A}',
            },
        ),
        (
            "full-width digits",
            s("\u{FF11}\u{FF12}\u{FF13}"),
            NonAscii {
                index: 0,
                ch: '\u{FF11}',
            },
        ),
        (
            "zero-width space",
            s("ac\u{200B}me"),
            NonAscii {
                index: 2,
                ch: '\u{200B}',
            },
        ),
        (
            "right-to-left override",
            s("\u{202E}emca"),
            NonAscii {
                index: 0,
                ch: '\u{202E}',
            },
        ),
        (
            "no-break space",
            s("ac\u{A0}me"),
            NonAscii {
                index: 2,
                ch: '\u{A0}',
            },
        ),
        (
            "emoji",
            s("acme\u{1F600}"),
            NonAscii {
                index: 4,
                ch: '\u{1F600}',
            },
        ),
        (
            "BOM",
            s("\u{FEFF}acme"),
            NonAscii {
                index: 0,
                ch: '\u{FEFF}',
            },
        ),
        ("dashes only", s("---"), PunctuationOnly),
        ("colon only", s(":"), PunctuationOnly),
        ("dot only", s("."), PunctuationOnly),
        ("all allowed punctuation", s("-_.:"), PunctuationOnly),
        ("64 bytes of punctuation", "_".repeat(64), PunctuationOnly),
    ]
}

#[test]
fn the_table_is_large_and_has_no_duplicates() {
    let table = bad_identifiers();
    assert!(table.len() >= 30, "only {} cases", table.len());
    let mut texts: Vec<&str> = table.iter().map(|(_, t, _)| t.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(
        texts.len(),
        table.len(),
        "a text appears twice in the table"
    );
}

#[test]
fn every_identifier_type_rejects_each_bad_text_with_its_error() {
    for (what, text, expected) in bad_identifiers() {
        assert_eq!(
            TenantId::parse(&text).err(),
            Some(expected.clone()),
            "TenantId: {what}"
        );
        assert_eq!(
            AgentId::parse(&text).err(),
            Some(expected.clone()),
            "AgentId: {what}"
        );
        assert_eq!(
            ConversationId::parse(&text).err(),
            Some(expected.clone()),
            "ConversationId: {what}"
        );
        assert_eq!(
            CollectionId::parse(&text).err(),
            Some(expected.clone()),
            "CollectionId: {what}"
        );
        assert_eq!(
            text.parse::<TenantId>().err(),
            Some(expected),
            "FromStr: {what}"
        );
    }
}

#[test]
fn each_error_code_is_stable() {
    for (what, text, expected) in bad_identifiers() {
        let code = TenantId::parse(&text).unwrap_err().code();
        let want = match expected {
            IdError::Empty => "ID_EMPTY",
            IdError::TooLong { .. } => "ID_TOO_LONG",
            IdError::Reserved { .. } => "ID_RESERVED",
            IdError::NonAscii { .. } => "ID_NON_ASCII",
            IdError::UpperCase { .. } => "ID_UPPER_CASE",
            IdError::ControlChar { .. } => "ID_CONTROL_CHAR",
            IdError::Whitespace { .. } => "ID_WHITESPACE",
            IdError::Quote { .. } => "ID_QUOTE",
            IdError::ForbiddenChar { .. } => "ID_FORBIDDEN_CHAR",
            IdError::PunctuationOnly => "ID_PUNCTUATION_ONLY",
            other => panic!("unexpected variant {other:?}"),
        };
        assert_eq!(code, want, "{what}");
    }
}

#[test]
fn a_bad_field_is_reported_as_that_field() {
    let codes = [
        (Field::Tenant, "TENANT_INVALID"),
        (Field::Agent, "AGENT_INVALID"),
        (Field::Conversation, "CONVERSATION_INVALID"),
        (Field::Collection, "COLLECTION_INVALID"),
    ];
    for (what, text, expected) in bad_identifiers() {
        for (field, code) in codes {
            let mut raw = Ctx::unvalidated();
            for f in Field::ALL {
                raw = raw.with_field(f, Some("good-1".to_owned()));
            }
            let raw = raw.with_field(field, Some(text.clone()));
            let err = raw.validate::<Validated>().unwrap_err();
            assert_eq!(
                err,
                ContextError::invalid(field, expected.clone()),
                "{field}: {what}"
            );
            assert_eq!(err.code(), code, "{field}: {what}");
            assert_eq!(err.http_status(), 400, "{field}: {what}");
        }
    }
}

#[test]
fn messages_do_not_echo_the_rejected_text() {
    // The message names the rule and the offending character, never the
    // whole value a client sent (it may be a log-injection attempt).
    let err = Ctx::unvalidated()
        .with_tenant("acme\r\nX-Admin: yes")
        .validate::<Validated>()
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("X-Admin"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn the_boundaries_are_accepted() {
    for ok in [
        "a".repeat(64),
        "9".to_owned(),
        "-a".to_owned(),
        ":a:".to_owned(),
        "defaults".to_owned(),
        "null0".to_owned(),
        "tenant_1.2-3:x".to_owned(),
    ] {
        assert_eq!(TenantId::parse(&ok).map(|t| t.to_string()), Ok(ok.clone()));
    }
}

#[test]
fn two_ids_never_differ_only_by_case() {
    // Upper case is refused, not folded: of all the spellings of a name,
    // only the lower-case one is an id, and it comes back as sent.
    for id in ["acme", "agent-7", "conv_456", "coll.789", "t1:eu-west.2"] {
        assert_eq!(TenantId::parse(id).unwrap().as_str(), id);
        let upper = id.to_ascii_uppercase();
        let first = upper.bytes().position(|b| b.is_ascii_uppercase()).unwrap();
        let title = format!("{}{}", &upper[..first + 1], &id[first + 1..]);
        for variant in [upper, title] {
            let err = TenantId::parse(&variant).unwrap_err();
            assert_eq!(err.code(), "ID_UPPER_CASE", "{variant}");
            assert_eq!(
                AgentId::parse(&variant).unwrap_err(),
                err,
                "AgentId {variant}"
            );
            assert_eq!(ConversationId::parse(&variant).unwrap_err(), err);
            assert_eq!(CollectionId::parse(&variant).unwrap_err(), err);
        }
    }
    let err = Ctx::unvalidated()
        .with_tenant("ACME")
        .validate::<Validated>()
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_INVALID");
    assert_eq!(
        err.to_string(),
        "the tenant id contains the upper-case letter 'A' at byte 0; \
         identifiers are lower case, so that two of them never differ only by case"
    );
}

#[test]
fn a_reserved_word_is_said_of_its_own_field() {
    for field in Field::ALL {
        let mut raw = Ctx::unvalidated();
        for f in Field::ALL {
            raw = raw.with_field(f, Some("good-1".to_owned()));
        }
        let err = raw
            .with_field(field, Some("Default".to_owned()))
            .validate::<Validated>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the {field} id is the reserved word `default`, which never names a real {field}"
            )
        );
        if field != Field::Tenant {
            assert!(!err.to_string().contains("tenant"), "{err}");
        }
    }
    // On its own, the error names no field.
    let alone = TenantId::parse("null").unwrap_err().to_string();
    assert!(!alone.contains("tenant"), "{alone}");
    assert!(alone.contains("`null`"), "{alone}");
}

#[test]
fn missing_fields_are_required_errors() {
    use tenant_core::{NoAgent, NoConversation, WithAgent, WithCollection, WithConversation};
    let none = Ctx::unvalidated();
    assert_eq!(
        none.validate::<Validated>().unwrap_err(),
        ContextError::TenantRequired
    );
    let tenant = Ctx::unvalidated().with_tenant("acme");
    assert_eq!(
        tenant
            .validate::<Validated<WithAgent>>()
            .unwrap_err()
            .code(),
        "AGENT_REQUIRED"
    );
    assert_eq!(
        tenant
            .validate::<Validated<NoAgent, WithConversation>>()
            .unwrap_err()
            .code(),
        "CONVERSATION_REQUIRED"
    );
    assert_eq!(
        tenant
            .validate::<Validated<NoAgent, NoConversation, WithCollection>>()
            .unwrap_err()
            .code(),
        "COLLECTION_REQUIRED"
    );
}
