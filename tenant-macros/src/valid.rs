//! Checks that span the options and the function together.

use syn::{ReturnType, Type};

use crate::ast::{Declared, Function, Marker, MARKERS};
use crate::attr::{Field, Options, Source};
use crate::ctxt::Ctxt;
use crate::suggest;

/// `options_ok` is false when an option was malformed: then only the checks
/// that do not read the options run.
pub(crate) fn check(cx: &Ctxt, opts: &Options, func: &Function<'_>, options_ok: bool) {
    check_async(cx, func);
    check_ctx_by_value(cx, func);
    if !options_ok {
        return;
    }
    check_bindings(cx, opts, func);
    if !opts.validate_known {
        return;
    }
    check_options(cx, opts);
    check_ctx_params(cx, opts, func);
    if opts.validate_tenant {
        check_return(cx, func);
    }
}

fn check_async(cx: &Ctxt, func: &Function<'_>) {
    let sig = &func.original.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "`#[with_context]` works on `async fn` only: make this function `async` (the context is validated asynchronously before the body runs)",
        );
    }
}

fn check_options(cx: &Ctxt, opts: &Options) {
    if opts.validate_tenant {
        return;
    }
    for field in [Field::Agent, Field::Conversation, Field::Collection] {
        if let Some(d) = opts.declared(field) {
            if let Source::Context = d.source {
                cx.error_spanned_by(
                    &d.key,
                    format!(
                        "`{f}` makes the {f} required, which needs validation, but `validate_tenant = false` turns validation off: remove one of the two (a public endpoint can read the raw value with `ctx.raw_{f}()`)",
                        f = field.name()
                    ),
                );
            }
        }
    }
}

/// The attribute as it would read with `extra` declared too, for hints.
fn attribute_with(opts: &Options, extra: Field) -> String {
    let names: Vec<&str> = Field::ALL
        .into_iter()
        .filter(|f| *f == Field::Tenant || *f == extra || opts.declared(*f).is_some())
        .map(Field::name)
        .collect();
    format!("#[with_context({})]", names.join(", "))
}

fn check_ctx_by_value(cx: &Ctxt, func: &Function<'_>) {
    for by_ref in &func.ctx_by_ref {
        cx.error_spanned_by(
            by_ref.ty,
            "take the context by value (`ctx: Ctx<..>`, without `&`): `#[with_context]` hands the body its own copy, and cloning one is a reference count",
        );
    }
    for extra in func.ctx_params.iter().skip(1) {
        cx.error_spanned_by(
            extra.ty,
            "a second context parameter: `#[with_context]` passes one context; remove this parameter and clone the first one if the body needs two",
        );
    }
}

fn check_ctx_params(cx: &Ctxt, opts: &Options, func: &Function<'_>) {
    let Some(param) = func.ctx_param() else {
        return;
    };
    match &param.declared {
        Declared::Validated(markers) => {
            if !opts.validate_tenant {
                cx.error_spanned_by(
                    param.ty,
                    "`validate_tenant = false` gives the body the raw context: take `Ctx<Unvalidated>` here, or remove `validate_tenant = false` to receive a validated context",
                );
                return;
            }
            for (pos, marker) in markers.iter().enumerate() {
                let field = Field::ALL[pos + 1];
                match marker {
                    Marker::With(span) if opts.declared(field).is_none() => cx.error_at(
                        *span,
                        format!(
                            "this context guarantees {} {}, which `#[with_context]` does not declare: add `{}` to the attribute, `{}`",
                            article(field),
                            field.name(),
                            field.name(),
                            attribute_with(opts, field)
                        ),
                    ),
                    Marker::Misplaced(name, span, right) => cx.error_at(
                        *span,
                        format!(
                            "`{name}` belongs in position {} of `Validated<{}, {}, {}>`: write `Validated<{}>`",
                            right + 1,
                            MARKERS[0].1,
                            MARKERS[1].1,
                            MARKERS[2].1,
                            placed(name, *right)
                        ),
                    ),
                    _ => {}
                }
            }
        }
        Declared::Unvalidated => {
            if opts.validate_tenant {
                cx.error_spanned_by(
                    param.ty,
                    "this function validates the tenant, so its context is validated: take `Ctx<Validated>` (or `Ctx`), or add `validate_tenant = false` for a public endpoint that reads the raw values",
                );
            }
        }
        Declared::Opaque => {}
    }
}

fn article(field: Field) -> &'static str {
    match field {
        Field::Agent => "an",
        _ => "a",
    }
}

/// `NoAgent, WithConversation` for a marker at `pos`.
fn placed(name: &str, pos: usize) -> String {
    let mut parts: Vec<&str> = MARKERS[..pos].iter().map(|(_, no)| *no).collect();
    parts.push(name);
    parts.join(", ")
}

fn check_bindings(cx: &Ctxt, opts: &Options, func: &Function<'_>) {
    for (field, param) in opts.bindings() {
        if func.bound_names.iter().any(|n| n == param) {
            continue;
        }
        if let Some(ctx) = func.ctx_param() {
            if let syn::Pat::Ident(p) = ctx.pat {
                if p.ident == *param {
                    cx.error_spanned_by(
                        param,
                        format!("`{param}` is the context parameter; `{} = ...` names the parameter that carries the {} id", field.name(), field.name()),
                    );
                    continue;
                }
            }
        }
        let names: Vec<String> = func.bound_names.iter().map(|n| n.to_string()).collect();
        let hint = suggest::closest(&param.to_string(), names.iter().map(String::as_str))
            .map(|n| format!(": did you mean `{n}`?"))
            .unwrap_or_else(|| {
                if names.is_empty() {
                    String::from(": this function has no other parameters")
                } else {
                    format!(
                        "; the parameters are {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            });
        cx.error_spanned_by(
            param,
            format!(
                "`{} = {param}` takes the {} from a parameter, but `{}` has no parameter named `{param}`{hint}",
                field.name(),
                field.name(),
                func.name()
            ),
        );
    }
}

fn check_return(cx: &Ctxt, func: &Function<'_>) {
    const HOW: &str = "`Result<T, E>` with `E: From<tenant_core::ContextError>` (a public endpoint with `validate_tenant = false` may return anything)";
    let sig = &func.original.sig;
    match &sig.output {
        ReturnType::Default => cx.error_spanned_by(
            sig,
            format!("`#[with_context]` returns a failed validation as the function's error, but `{}` returns `()`: return {HOW}", sig.ident),
        ),
        ReturnType::Type(_, ty) => {
            if !is_result(ty) {
                cx.error_spanned_by(
                    ty,
                    format!("`#[with_context]` returns a failed validation as the function's error, so this must be a `Result`: {HOW}"),
                );
            }
        }
    }
}

/// `Result<..>`, `std::io::Result<..>`, `anyhow::Result<..>`, `AppResult<..>`.
pub(crate) fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Result")),
        Type::Group(g) => is_result(&g.elem),
        Type::Paren(p) => is_result(&p.elem),
        _ => false,
    }
}
