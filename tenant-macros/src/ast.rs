//! The annotated function, read into types that keep the user's tokens for
//! spans: which parameter is the context, what state it declares, which
//! names the parameters bind.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Type, TypePath};

/// One marker position of `Validated<A, C, L>` as written.
#[derive(Clone, Debug)]
pub(crate) enum Marker {
    /// `WithAgent`, ... in its own position: the field is required.
    With(Span),
    /// `NoAgent`, ..., or the position left to its default.
    Without,
    /// A marker that belongs in another position, such as
    /// `Validated<WithConversation>`: `(name, span, its position)`.
    Misplaced(String, Span, usize),
    /// Something this macro cannot read (an alias, `_`): the compiler
    /// checks it through the generated `let`.
    Opaque,
}

/// The state a context parameter declares.
#[derive(Clone, Debug)]
pub(crate) enum Declared {
    /// `Ctx`, `Ctx<Validated>`, `Ctx<Validated<WithAgent, ..>>`.
    Validated([Marker; 3]),
    /// `Ctx<Unvalidated>`.
    Unvalidated,
    /// `Ctx<SomeAlias>`: checked by the compiler only.
    Opaque,
}

/// A parameter recognised as the context (its type's last path segment is
/// `Ctx`).
pub(crate) struct CtxParam<'a> {
    pub(crate) index: usize,
    pub(crate) pat: &'a Pat,
    pub(crate) ty: &'a Type,
    pub(crate) declared: Declared,
}

/// A parameter that looks like a context taken by reference, `&Ctx<..>`.
pub(crate) struct CtxByRef<'a> {
    pub(crate) ty: &'a Type,
}

pub(crate) struct Function<'a> {
    /// The function with an empty block: the body is [`body`](Self::body).
    pub(crate) original: &'a ItemFn,
    /// The body as written, braces included, never parsed by this macro.
    pub(crate) body: &'a proc_macro2::Group,
    pub(crate) ctx_params: Vec<CtxParam<'a>>,
    pub(crate) ctx_by_ref: Vec<CtxByRef<'a>>,
    /// Every name the other parameters bind, including inside patterns such
    /// as `Path(agent_id): Path<String>`.
    pub(crate) bound_names: Vec<Ident>,
}

pub(crate) const MARKERS: [(&str, &str); 3] = [
    ("WithAgent", "NoAgent"),
    ("WithConversation", "NoConversation"),
    ("WithCollection", "NoCollection"),
];

impl<'a> Function<'a> {
    pub(crate) fn from_syn(item: &'a ItemFn, body: &'a proc_macro2::Group) -> Self {
        let mut ctx_params = Vec::new();
        let mut ctx_by_ref = Vec::new();
        let mut names = NameCollector(Vec::new());
        for (index, arg) in item.sig.inputs.iter().enumerate() {
            let FnArg::Typed(pt) = arg else { continue };
            let marked = pt.attrs.iter().any(is_ctx_attr);
            let declared = match ctx_state(&pt.ty) {
                Some(d) => Some(d),
                // `#[ctx] ctx: AgentCtx`: a type alias the macro cannot see
                // through; the compiler checks it.
                None if marked => Some(Declared::Opaque),
                None => None,
            };
            if let Some(declared) = declared {
                ctx_params.push(CtxParam {
                    index,
                    pat: &pt.pat,
                    ty: &pt.ty,
                    declared,
                });
                continue;
            }
            if let Type::Reference(r) = &*pt.ty {
                if ctx_state(&r.elem).is_some() {
                    ctx_by_ref.push(CtxByRef { ty: &pt.ty });
                }
            }
            names.visit_pat(&pt.pat);
        }
        Function {
            original: item,
            body,
            ctx_params,
            ctx_by_ref,
            bound_names: names.0,
        }
    }

    /// The context parameter that is used (the first one; a second is an
    /// error reported elsewhere).
    pub(crate) fn ctx_param(&self) -> Option<&CtxParam<'a>> {
        self.ctx_params.first()
    }

    pub(crate) fn name(&self) -> &Ident {
        &self.original.sig.ident
    }
}

/// `#[ctx]`, which marks the context parameter when its type is an alias.
pub(crate) fn is_ctx_attr(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("ctx")
}

struct NameCollector(Vec<Ident>);

impl<'ast> Visit<'ast> for NameCollector {
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.0.push(p.ident.clone());
        syn::visit::visit_pat_ident(self, p);
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(TypePath { qself: None, path }) => path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn type_args(seg: &syn::PathSegment) -> Vec<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Some(state)` if `ty` is a `Ctx<..>`.
pub(crate) fn ctx_state(ty: &Type) -> Option<Declared> {
    let seg = last_segment(ty)?;
    if seg.ident != "Ctx" {
        return None;
    }
    let args = type_args(seg);
    let Some(state) = args.first() else {
        return Some(Declared::Validated([
            Marker::Without,
            Marker::Without,
            Marker::Without,
        ]));
    };
    let Some(state_seg) = last_segment(state) else {
        return Some(Declared::Opaque);
    };
    if state_seg.ident == "Unvalidated" {
        return Some(Declared::Unvalidated);
    }
    if state_seg.ident != "Validated" {
        return Some(Declared::Opaque);
    }
    let markers = type_args(state_seg);
    let read = |pos: usize| -> Marker {
        let Some(t) = markers.get(pos) else {
            return Marker::Without;
        };
        let Some(s) = last_segment(t) else {
            return Marker::Opaque;
        };
        let name = s.ident.to_string();
        if name == MARKERS[pos].0 {
            return Marker::With(t.span());
        }
        if name == MARKERS[pos].1 {
            return Marker::Without;
        }
        match MARKERS.iter().position(|(w, n)| *w == name || *n == name) {
            Some(other) => Marker::Misplaced(name, t.span(), other),
            None => Marker::Opaque,
        }
    };
    Some(Declared::Validated([read(0), read(1), read(2)]))
}
