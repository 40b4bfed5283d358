//! Parsing and validation: from the attribute and the trait to a checked [`Service`].
//!
//! Every rule reports at the offending tokens and says what to write instead; all problems of
//! a trait are collected with [`syn::Error::combine`] and reported together.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemTrait, Lit, LitStr, Pat,
    PathArguments, ReturnType, TraitItem, TraitItemFn, Type, Visibility,
};

/// The options of `#[service(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    name: Option<LitStr>,
    version: Option<LitStr>,
    group: Option<LitStr>,
    protocol: Option<LitStr>,
}

/// The protocols that carry streaming methods (`Protocol::carries_streams`).
const STREAM_PROTOCOLS: &[&str] = &["tri", "injvm"];

impl Options {
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Options> {
        let mut o = Options::default();
        let parser = syn::meta::parser(|meta| {
            let slot = if meta.path.is_ident("name") {
                &mut o.name
            } else if meta.path.is_ident("version") {
                &mut o.version
            } else if meta.path.is_ident("group") {
                &mut o.group
            } else if meta.path.is_ident("protocol") {
                &mut o.protocol
            } else {
                return Err(meta.error(
                    "unknown #[service] option; expected `name = \"org.example.Greeter\"`, `version = \"1.0.0\"`, `group = \"...\"` or `protocol = \"tri\"`",
                ));
            };
            if slot.is_some() {
                return Err(meta.error("this option is given twice; keep one"));
            }
            let value: LitStr = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a string literal, e.g. `version = \"1.0.0\"`",
                )
            })?;
            if value.value().trim().is_empty() {
                return Err(syn::Error::new(
                    value.span(),
                    "must not be empty; leave the option out instead",
                ));
            }
            *slot = Some(value);
            Ok(())
        });
        parser.parse2(attr)?;
        Ok(o)
    }
}

/// A validated service trait.
pub(crate) struct Service {
    /// The trait's attributes (doc comments, ...), passed through.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// Supertraits the user wrote (kept, ours are appended).
    pub(crate) supertraits: Vec<TokenStream>,
    pub(crate) interface: String,
    pub(crate) version: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) methods: Vec<Method>,
}

/// A validated method.
pub(crate) struct Method {
    /// Attributes other than ours (doc comments, lints), passed through.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    /// The wire name (the identifier without `r#`).
    pub(crate) name: String,
    pub(crate) args: Vec<Arg>,
    pub(crate) ret: Ret,
    /// Where the return type is written, if it is.
    pub(crate) ret_span: Option<Span>,
    pub(crate) idempotent: bool,
    pub(crate) oneway: bool,
    pub(crate) timeout_ms: Option<u64>,
    /// `#[idempotency_key]` (`Some(None)`: a generated key) or `#[idempotency_key(arg)]`
    /// (`Some(Some(index))`: the argument's value is the key).
    pub(crate) idempotency_key: Option<Option<usize>>,
    /// `#[ordered_by(arg)]`: the index of the argument whose value orders the calls.
    pub(crate) ordered_by: Option<usize>,
    /// The item type of a `Streaming<T>` argument (client streaming).
    pub(crate) stream_arg: Option<Type>,
    /// The item type of a `Streaming<T>` result (server streaming).
    pub(crate) stream_ret: Option<Type>,
}

impl Method {
    /// The `StreamKind` variant name, `None` for a unary method.
    pub(crate) fn stream_kind(&self) -> Option<&'static str> {
        match (self.stream_arg.is_some(), self.stream_ret.is_some()) {
            (false, false) => None,
            (true, false) => Some("Client"),
            (false, true) => Some("Server"),
            (true, true) => Some("Bidi"),
        }
    }
}

/// One argument.
pub(crate) struct Arg {
    /// The name shown in metadata (`_` for a wildcard).
    pub(crate) name: String,
    pub(crate) ty: Type,
    /// The Java parameter descriptor (`Ljava/lang/String;`): `#[java_type = "..."]`, else
    /// derived from the type.
    pub(crate) java_type: String,
}

/// What a method returns.
// A few of these exist per trait, at compile time only: size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ret {
    /// A plain value (`()` when nothing is written).
    Plain(Type),
    /// `Result<T, E>`: `E` is a business error.
    Result { full: Type, ok: Type, err: Type },
}

impl Ret {
    /// The type the trait method's future outputs.
    pub(crate) fn full(&self) -> &Type {
        match self {
            Ret::Plain(t) | Ret::Result { full: t, .. } => t,
        }
    }
}

/// Names the generated client already uses for its own methods.
const RESERVED: &[&str] = &[
    "new",
    "clone",
    "invoker",
    "service_key",
    "with_service_key",
    "from_invoker",
    "descriptor",
];

/// Collects errors so that all of them are reported.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let e = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn push_tokens(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        let e = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Service {
    pub(crate) fn from_trait(options: Options, item: ItemTrait) -> syn::Result<Service> {
        let mut errors = Errors::default();
        if let Some(u) = &item.unsafety {
            errors.push_tokens(u, "a service trait cannot be `unsafe`; remove `unsafe`");
        }
        if let Some(a) = &item.auto_token {
            errors.push_tokens(a, "a service trait cannot be an `auto` trait");
        }
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.push_tokens(
                &item.generics,
                "a service trait cannot be generic: its methods are called by name with serialized arguments; use concrete types",
            );
        }
        let mut methods: Vec<Method> = Vec::new();
        for trait_item in item.items {
            match trait_item {
                TraitItem::Fn(f) => {
                    let m = method(f, &mut errors);
                    {
                        if let Some(first) = methods.iter().find(|o| o.name == m.name) {
                            errors.push(
                                m.ident.span(),
                                format_args!(
                                    "duplicate method `{}`: calls are dispatched by name, so each method needs its own; rename one",
                                    m.name
                                ),
                            );
                            errors.push(first.ident.span(), format_args!("`{}` first defined here", m.name));
                        } else {
                            methods.push(m);
                        }
                    }
                }
                other => errors.push_tokens(
                    other,
                    "a service trait holds only methods: `async fn name(&self, arg: Type) -> Ret;`; move constants and types out of it",
                ),
            }
        }
        if let Some(p) = &options.protocol {
            let name = p.value();
            if !STREAM_PROTOCOLS.contains(&name.as_str()) {
                for m in methods.iter().filter(|m| m.stream_kind().is_some()) {
                    let at = m
                        .stream_arg
                        .as_ref()
                        .and(m.args.first())
                        .map(|a| a.ty.span())
                        .or(m.ret_span)
                        .unwrap_or(m.ident.span());
                    errors.push(
                        at,
                        format_args!(
                            "method `{}` streams, but protocol `{name}` cannot carry streams; declare `protocol = \"tri\"` (streams travel over {}), or make the method unary",
                            m.name,
                            STREAM_PROTOCOLS.join(" and ")
                        ),
                    );
                }
            }
        }
        errors.finish()?;
        let supertraits = item
            .supertraits
            .iter()
            .map(ToTokens::to_token_stream)
            .collect();
        Ok(Service {
            attrs: item.attrs,
            vis: item.vis,
            interface: options
                .name
                .map(|n| n.value())
                .unwrap_or_else(|| item.ident.unraw().to_string()),
            ident: item.ident,
            supertraits,
            version: options.version.map(|v| v.value()),
            group: options.group.map(|g| g.value()),
            methods,
        })
    }
}

/// Our method attributes, found and removed from `attrs`.
#[derive(Default)]
struct MethodFlags {
    idempotent: bool,
    oneway: Option<Span>,
    timeout_ms: Option<u64>,
    /// `#[idempotency_key]` seen (at its span), with the argument it names, if any.
    idempotency_key: Option<(Span, Option<Ident>)>,
    /// `#[ordered_by(arg)]` seen, with the argument it names.
    ordered_by: Option<(Span, Ident)>,
}

fn method_flags(attrs: Vec<Attribute>, errors: &mut Errors) -> (Vec<Attribute>, MethodFlags) {
    let mut flags = MethodFlags::default();
    let mut kept = Vec::new();
    for attr in attrs {
        let path = attr.path();
        if path.is_ident("idempotent") {
            if attr.meta.require_path_only().is_err() {
                errors.push_tokens(&attr, "write `#[idempotent]` without arguments");
            } else if flags.idempotent {
                errors.push_tokens(&attr, "`#[idempotent]` is given twice; keep one");
            }
            flags.idempotent = true;
        } else if path.is_ident("oneway") {
            if attr.meta.require_path_only().is_err() {
                errors.push_tokens(&attr, "write `#[oneway]` without arguments");
            } else if flags.oneway.is_some() {
                errors.push_tokens(&attr, "`#[oneway]` is given twice; keep one");
            }
            flags.oneway = Some(attr.span());
        } else if path.is_ident("timeout") {
            if flags.timeout_ms.is_some() {
                errors.push_tokens(&attr, "`#[timeout]` is given twice; keep one");
            }
            match timeout_ms(&attr) {
                Some(ms) => flags.timeout_ms = Some(ms),
                None => errors.push_tokens(
                    &attr,
                    "write the timeout in milliseconds as a positive integer: `#[timeout = 300]` or `#[timeout(300)]`",
                ),
            }
        } else if path.is_ident("idempotency_key") {
            if flags.idempotency_key.is_some() {
                errors.push_tokens(&attr, "`#[idempotency_key]` is given twice; keep one");
            }
            match &attr.meta {
                syn::Meta::Path(_) => flags.idempotency_key = Some((attr.span(), None)),
                syn::Meta::List(list) => match syn::parse2::<Ident>(list.tokens.clone()) {
                    Ok(arg) => flags.idempotency_key = Some((attr.span(), Some(arg))),
                    Err(_) => errors.push_tokens(
                        &attr,
                        "write `#[idempotency_key]` (a key generated per call) or `#[idempotency_key(arg)]` naming the argument whose value is the key",
                    ),
                },
                syn::Meta::NameValue(_) => errors.push_tokens(
                    &attr,
                    "write `#[idempotency_key]` (a key generated per call) or `#[idempotency_key(arg)]` naming the argument whose value is the key",
                ),
            }
        } else if path.is_ident("ordered_by") {
            if flags.ordered_by.is_some() {
                errors.push_tokens(&attr, "`#[ordered_by]` is given twice; keep one");
            }
            let arg = match &attr.meta {
                syn::Meta::List(list) => syn::parse2::<Ident>(list.tokens.clone()).ok(),
                _ => None,
            };
            match arg {
                Some(arg) => flags.ordered_by = Some((attr.span(), arg)),
                None => errors.push_tokens(
                    &attr,
                    "write `#[ordered_by(arg)]` naming the argument whose value orders the calls",
                ),
            }
        } else if path.is_ident("cfg") || path.is_ident("cfg_attr") {
            errors.push_tokens(
                &attr,
                "`#[cfg]` on a service method is not supported: the client, the server and the metadata must agree on the methods; put the `#[cfg]` on the whole trait",
            );
        } else {
            kept.push(attr);
        }
    }
    (kept, flags)
}

fn timeout_ms(attr: &Attribute) -> Option<u64> {
    let lit = match &attr.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => i.clone(),
            _ => return None,
        },
        syn::Meta::List(list) => syn::parse2::<syn::LitInt>(list.tokens.clone()).ok()?,
        syn::Meta::Path(_) => return None,
    };
    lit.base10_parse::<u64>().ok().filter(|ms| *ms > 0)
}

fn method(f: TraitItemFn, errors: &mut Errors) -> Method {
    let (attrs, flags) = method_flags(f.attrs, errors);
    let sig = f.sig;
    let name = sig.ident.unraw().to_string();

    if let Some(body) = &f.default {
        errors.push_tokens(
            body,
            "a service method cannot have a default body: end the declaration with `;` and implement it in your `impl`",
        );
    }
    if let Some(c) = &sig.constness {
        errors.push_tokens(c, "a service method cannot be `const`; write `async fn`");
    }
    if let Some(u) = &sig.unsafety {
        errors.push_tokens(u, "a service method cannot be `unsafe`; remove `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.push_tokens(
            abi,
            "a service method cannot have an `extern` ABI; remove it",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.push_tokens(v, "a service method cannot be variadic");
    }
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span,
            format_args!(
                "service methods must be `async`: write `async fn {name}(&self, ...)`; the client awaits a remote call"
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        errors.push_tokens(
            &sig.generics,
            format_args!(
                "service method `{name}` cannot be generic: arguments are serialized and dispatched by name; use concrete owned types"
            ),
        );
    } else if let Some(w) = &sig.generics.where_clause {
        errors.push_tokens(
            w,
            format_args!(
                "service method `{name}` cannot have a `where` clause; use concrete owned types"
            ),
        );
    }

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) => {
            if r.colon_token.is_some() {
                errors.push_tokens(r, "write the receiver as `&self`; typed receivers (`self: Arc<Self>`) are not supported");
            } else if r.reference.is_none() {
                errors.push_tokens(
                    r,
                    "take `&self`, not `self`: one service object serves many concurrent calls",
                );
            } else if r.mutability.is_some() {
                errors.push_tokens(
                    r,
                    "take `&self`, not `&mut self`: calls run concurrently; keep mutable state behind a `Mutex` or atomics in your implementation",
                );
            } else if let Some((_, Some(lt))) = &r.reference {
                errors.push_tokens(lt, "write `&self` without a lifetime");
            }
        }
        Some(FnArg::Typed(t)) => errors.push_tokens(
            t,
            format_args!("add `&self` as the first parameter: `async fn {name}(&self, ...)`"),
        ),
        None => errors.push(
            sig.paren_token.span.join(),
            format_args!("add `&self` as the first parameter: `async fn {name}(&self)`"),
        ),
    }
    let mut args = Vec::new();
    for input in inputs {
        let FnArg::Typed(t) = input else {
            continue; // a second receiver is a Rust syntax error already
        };
        let arg_name = match &*t.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                p.ident.unraw().to_string()
            }
            Pat::Wild(_) => "_".to_string(),
            other => {
                errors.push_tokens(
                    other,
                    "name the argument with a plain identifier (`name: Type`); patterns are not supported",
                );
                continue;
            }
        };
        check_owned(&t.ty, Position::Argument, errors);
        let java_type = java_type_attr(&t.attrs, errors).unwrap_or_else(|| java_type(&t.ty));
        args.push(Arg {
            name: arg_name,
            ty: (*t.ty).clone(),
            java_type,
        });
    }

    let ret = match &sig.output {
        ReturnType::Default => Ret::Plain(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => {
            check_owned(ty, Position::Return, errors);
            match result_parts(ty) {
                Some((ok, err)) => Ret::Result {
                    full: (**ty).clone(),
                    ok,
                    err,
                },
                None => Ret::Plain((**ty).clone()),
            }
        }
    };
    if let Some(span) = flags.oneway {
        let unit = matches!(&ret, Ret::Plain(Type::Tuple(t)) if t.elems.is_empty());
        if !unit {
            let at = match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => span,
            };
            errors.push(
                at,
                "a `#[oneway]` method returns nothing: the caller gets no reply, so remove the `-> ...` return type (or remove `#[oneway]` to get a result)",
            );
        }
    }
    let arg_index = |ident: &Ident, attr: &str, errors: &mut Errors| {
        let wanted = ident.unraw().to_string();
        let found = args.iter().position(|a| a.name == wanted);
        if found.is_none() {
            let known: Vec<&str> = args
                .iter()
                .map(|a| a.name.as_str())
                .filter(|n| *n != "_")
                .collect();
            errors.push(
                ident.span(),
                format_args!(
                    "`#[{attr}({wanted})]`: `{name}` has no argument `{wanted}`; its arguments are: {}",
                    if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
                ),
            );
        }
        found
    };
    let idempotency_key = match &flags.idempotency_key {
        None => None,
        Some((_, None)) => Some(None),
        Some((_, Some(ident))) => arg_index(ident, "idempotency_key", errors).map(Some),
    };
    let ordered_by = match &flags.ordered_by {
        None => None,
        Some((_, ident)) => arg_index(ident, "ordered_by", errors),
    };
    if flags.oneway.is_some() {
        if let Some((span, _)) = flags.idempotency_key {
            errors.push(
                span,
                "a `#[oneway]` method gets no reply, so there is no result to remember: remove `#[idempotency_key]` or `#[oneway]`",
            );
        }
    }
    let streamed: Vec<&Arg> = args
        .iter()
        .filter(|a| stream_item(&a.ty).is_some())
        .collect();
    let stream_arg = streamed.first().and_then(|a| stream_item(&a.ty));
    if let Some(first) = streamed.first() {
        if args.len() != 1 {
            errors.push(
                first.ty.span(),
                format_args!(
                    "a client-streaming method takes the stream as its only argument; send other values as items, or in a method of their own"
                ),
            );
        }
    }
    let stream_ret = match &ret {
        Ret::Plain(t) => stream_item(t),
        Ret::Result { ok, full, .. } => {
            if stream_item(ok).is_some() {
                errors.push(
                    full.span(),
                    "return `Streaming<T>` itself: errors travel in the stream (an `Err` item ends it)",
                );
            }
            None
        }
    };
    if let (Some(span), true) = (flags.oneway, stream_arg.is_some() || stream_ret.is_some()) {
        errors.push(span, "a streaming method cannot be `#[oneway]`");
    }
    if RESERVED.contains(&name.as_str()) {
        errors.push(
            sig.ident.span(),
            format_args!(
                "`{name}` is used by the generated client itself; rename the method (reserved: {})",
                RESERVED.join(", ")
            ),
        );
    }
    Method {
        attrs,
        ident: sig.ident,
        name,
        args,
        ret,
        ret_span: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(ty.span()),
        },
        idempotent: flags.idempotent,
        oneway: flags.oneway.is_some(),
        timeout_ms: flags.timeout_ms,
        idempotency_key,
        ordered_by,
        stream_arg,
        stream_ret,
    }
}

/// The `T` of a `Streaming<T>` (any path ending in `Streaming` with one type argument).
pub(crate) fn stream_item(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Streaming" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return None;
    };
    match a.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(t)] => Some(t.clone()),
        _ => None,
    }
}

/// `#[java_type = "Lcom/example/Person;"]` on an argument, checked to be one well-formed
/// Java parameter descriptor.
fn java_type_attr(attrs: &[Attribute], errors: &mut Errors) -> Option<String> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("java_type")) {
        if found.is_some() {
            errors.push_tokens(attr, "`#[java_type]` is given twice; keep one");
            continue;
        }
        let lit = match &attr.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        };
        let Some(text) = lit else {
            errors.push_tokens(
                attr,
                "write the Java parameter descriptor as a string: `#[java_type = \"Lcom/example/Person;\"]`",
            );
            continue;
        };
        if is_descriptor(&text) {
            found = Some(text);
        } else {
            let hint = if !text.is_empty() && !text.contains(['/', ';', '[']) {
                format!(
                    "; for the class `{text}` write `#[java_type = \"L{};\"]`",
                    text.replace('.', "/")
                )
            } else {
                String::new()
            };
            errors.push_tokens(
                attr,
                format_args!(
                    "`{text}` is not a Java parameter descriptor (one of `Z B C S I J F D`, `Lpkg/Class;`, or `[` before one){hint}"
                ),
            );
        }
    }
    found
}

/// Whether `d` is exactly one Java field descriptor (`I`, `[B`, `Ljava/lang/String;`).
fn is_descriptor(d: &str) -> bool {
    let body = d.trim_start_matches('[');
    match body.as_bytes() {
        [b'Z' | b'B' | b'C' | b'S' | b'I' | b'J' | b'F' | b'D'] => true,
        [b'L', .., b';'] => {
            let name = &body[1..body.len() - 1];
            !name.is_empty()
                && !name.contains([';', '.', '[', ' '])
                && !name.starts_with('/')
                && !name.ends_with('/')
        }
        _ => false,
    }
}

/// The last path segment of `ty` and its first type argument, if any.
fn segment(ty: &Type) -> Option<(String, Option<&Type>)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let arg = match &last.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    };
    Some((last.ident.to_string(), arg))
}

/// The Java parameter descriptor for a Rust argument type (see the `#[service]` docs).
pub(crate) fn java_type(ty: &Type) -> String {
    let object = "Ljava/lang/Object;".to_string();
    if let Type::Reference(r) = ty {
        return java_type(&r.elem);
    }
    let Some((name, arg)) = segment(ty) else {
        return object;
    };
    let d = match name.as_str() {
        "String" | "str" => "Ljava/lang/String;",
        "i32" | "u16" | "u8" => "I",
        "i64" | "u32" | "u64" => "J",
        "bool" => "Z",
        "f64" => "D",
        "f32" => "F",
        "i16" => "S",
        "i8" => "B",
        "char" => "C",
        "ByteBuf" | "Bytes" => "[B",
        "Vec" if arg.and_then(segment).is_some_and(|(n, _)| n == "u8") => "[B",
        "Vec" | "VecDeque" | "LinkedList" => "Ljava/util/List;",
        "HashSet" | "BTreeSet" => "Ljava/util/Set;",
        "HashMap" | "BTreeMap" => "Ljava/util/Map;",
        "Option" => {
            return match arg.map(java_type).as_deref() {
                Some("I") => "Ljava/lang/Integer;".into(),
                Some("J") => "Ljava/lang/Long;".into(),
                Some("Z") => "Ljava/lang/Boolean;".into(),
                Some("D") => "Ljava/lang/Double;".into(),
                Some("F") => "Ljava/lang/Float;".into(),
                Some("S") => "Ljava/lang/Short;".into(),
                Some("B") => "Ljava/lang/Byte;".into(),
                Some("C") => "Ljava/lang/Character;".into(),
                Some(other) => other.into(),
                None => object,
            }
        }
        "Box" | "Arc" => return arg.map_or(object, java_type),
        _ => return object,
    };
    d.to_string()
}

#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

/// Arguments and results cross the network: they must be owned, concrete types.
fn check_owned(ty: &Type, pos: Position, errors: &mut Errors) {
    let what = match pos {
        Position::Argument => "arguments",
        Position::Return => "results",
    };
    match ty {
        Type::Reference(r) => {
            let fix = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => "take `String` instead of `&str`".to_string(),
                Type::Slice(s) => format!(
                    "take `Vec<{}>` instead of `&[{0}]`",
                    type_name(&s.elem)
                ),
                Type::Path(p) if p.path.is_ident("Path") => "take `PathBuf` instead of `&Path`".to_string(),
                other => format!("take an owned `{}` instead of a reference", type_name(other)),
            };
            errors.push_tokens(
                ty,
                format_args!("{fix}: RPC {what} are serialized and must be owned"),
            );
        }
        Type::ImplTrait(_) => errors.push_tokens(
            ty,
            format_args!(
                "`impl Trait` is not allowed here: RPC {what} are decoded into one concrete type; name a concrete owned type"
            ),
        ),
        Type::Infer(_) => errors.push_tokens(ty, "write the type out"),
        _ => {
            if let Some(lt) = borrowed_lifetime(ty.to_token_stream()) {
                errors.push(
                    lt,
                    format_args!(
                        "RPC {what} must be owned (`'static`): remove the lifetime and use owned types (`String`, `Vec<T>`)"
                    ),
                );
            }
        }
    }
}

/// The span of a lifetime other than `'static` in `tokens`, or of a `&` reference.
fn borrowed_lifetime(tokens: TokenStream) -> Option<Span> {
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                if let Some(TokenTree::Ident(i)) = iter.peek() {
                    if i != "static" {
                        return Some(i.span());
                    }
                }
            }
            TokenTree::Punct(p) if p.as_char() == '&' => return Some(p.span()),
            TokenTree::Group(g) => {
                if let Some(s) = borrowed_lifetime(g.stream()) {
                    return Some(s);
                }
            }
            _ => {}
        }
    }
    None
}

/// `(T, E)` when `ty` is written `Result<T, E>` (any path ending in `Result` with two type
/// arguments).
fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next()?;
    if types.next().is_some() || args.args.len() != 2 {
        return None;
    }
    Some((ok, err))
}

/// A type as readable source text (`Vec<Option<u8>>`, not `Vec < Option < u8 > >`).
pub(crate) fn type_name(ty: &Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (":: ", "::"),
        (" ::", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        while s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> Type {
        syn::parse_str(s).expect("a type")
    }

    #[test]
    fn java_descriptors_follow_the_documented_table() {
        for (rust, java) in [
            ("String", "Ljava/lang/String;"),
            ("i32", "I"),
            ("i64", "J"),
            ("bool", "Z"),
            ("f64", "D"),
            ("f32", "F"),
            ("i16", "S"),
            ("i8", "B"),
            ("Vec<u8>", "[B"),
            ("serde_bytes::ByteBuf", "[B"),
            ("Vec<String>", "Ljava/util/List;"),
            ("std::collections::HashMap<String, i32>", "Ljava/util/Map;"),
            ("BTreeMap<String, i32>", "Ljava/util/Map;"),
            ("Option<i32>", "Ljava/lang/Integer;"),
            ("Option<i64>", "Ljava/lang/Long;"),
            ("Option<String>", "Ljava/lang/String;"),
            ("Person", "Ljava/lang/Object;"),
            ("(u8, u8)", "Ljava/lang/Object;"),
        ] {
            assert_eq!(java_type(&ty(rust)), java, "{rust}");
        }
        assert!(is_descriptor("Lcom/example/Person;"));
        assert!(is_descriptor("[[I"));
        for bad in [
            "com.example.Person",
            "Lcom.example.Person;",
            "L;",
            "II",
            "",
            "[",
            "X",
        ] {
            assert!(!is_descriptor(bad), "{bad}");
        }
    }

    #[test]
    fn type_names_read_like_source() {
        assert_eq!(type_name(&ty("Vec < Option < u8 > >")), "Vec<Option<u8>>");
        assert_eq!(
            type_name(&ty("std::collections::HashMap<String, (u8, i64)>")),
            "std::collections::HashMap<String, (u8, i64)>"
        );
        assert_eq!(type_name(&ty("[u8; 4]")), "[u8; 4]");
        assert_eq!(type_name(&ty("()")), "()");
    }

    #[test]
    fn only_two_argument_results_are_business_results() {
        let (ok, err) = result_parts(&ty("Result<u8, MyError>")).expect("result");
        assert_eq!(type_name(&ok), "u8");
        assert_eq!(type_name(&err), "MyError");
        assert!(result_parts(&ty("std::result::Result<(), String>")).is_some());
        assert!(result_parts(&ty("io::Result<u8>")).is_none());
        assert!(result_parts(&ty("Option<u8>")).is_none());
    }

    #[test]
    fn all_errors_of_a_trait_are_reported_together() {
        let item: ItemTrait = syn::parse_str(
            "trait T { fn a(&self); async fn b(&mut self); async fn c(&self, s: &str); async fn a(&self); }",
        )
        .expect("trait");
        let Err(e) = Service::from_trait(Options::default(), item) else {
            panic!("must be rejected")
        };
        let messages: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].contains("must be `async`"));
        assert!(messages[1].contains("not `&mut self`"));
        assert!(messages[2].contains("take `String` instead of `&str`"));
        assert!(messages[3].contains("duplicate method `a`"));
        assert!(messages[4].contains("first defined here"));
    }

    #[test]
    fn idempotency_and_ordering_keys_name_real_arguments() {
        let item: ItemTrait = syn::parse_str(
            "trait P {
                #[idempotency_key(order)] #[ordered_by(order)]
                async fn charge(&self, order: String, amount: u64) -> String;
                #[idempotency_key] async fn fresh(&self);
            }",
        )
        .expect("trait");
        let s = Service::from_trait(Options::default(), item).expect("valid");
        assert_eq!(s.methods[0].idempotency_key, Some(Some(0)));
        assert_eq!(s.methods[0].ordered_by, Some(0));
        assert_eq!(s.methods[1].idempotency_key, Some(None));
        assert_eq!(s.methods[1].ordered_by, None);

        let item: ItemTrait = syn::parse_str(
            "trait P {
                #[idempotency_key(ordr)] async fn a(&self, order: String);
                #[ordered_by] async fn b(&self, k: u8);
                #[ordered_by(\"k\")] async fn c(&self, k: u8);
                #[oneway] #[idempotency_key] async fn d(&self);
                #[idempotency_key = 1] async fn e(&self, k: u8);
            }",
        )
        .expect("trait");
        let Err(e) = Service::from_trait(Options::default(), item) else {
            panic!("must be rejected")
        };
        let messages: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 5, "{messages:#?}");
        assert!(messages[0].contains("has no argument `ordr`; its arguments are: order"));
        assert!(messages[1].contains("write `#[ordered_by(arg)]`"));
        assert!(messages[2].contains("write `#[ordered_by(arg)]`"));
        assert!(messages[3].contains("`#[oneway]` method gets no reply"));
        assert!(messages[4].contains("write `#[idempotency_key]`"));
    }

    #[test]
    fn defaults_and_options() {
        let item: ItemTrait =
            syn::parse_str("pub trait r#Greeter { async fn greet(&self, _: u8); }").expect("trait");
        let s = Service::from_trait(Options::default(), item).expect("valid");
        assert_eq!(s.interface, "Greeter");
        assert_eq!(s.methods[0].args[0].name, "_");
        let o = Options::parse(quote::quote!(name = "a.B", group = "g")).expect("options");
        let item: ItemTrait = syn::parse_str("trait G {}").expect("trait");
        let s = Service::from_trait(o, item).expect("valid");
        assert_eq!(
            (s.interface.as_str(), s.group.as_deref()),
            ("a.B", Some("g"))
        );
        assert!(Options::parse(quote::quote!(version = "")).is_err());
        assert!(Options::parse(quote::quote!(name = "a", name = "b")).is_err());
    }
}
