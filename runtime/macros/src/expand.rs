//! The expansion shared by `#[unplug::main]` and `#[unplug::test]`.

use crate::args::{combine, Args};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, ReturnType, Type};

/// Which macro is expanding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[unplug::main]",
            Kind::Test => "#[unplug::test]",
        }
    }

    /// What the function is called in messages.
    fn what(self) -> &'static str {
        match self {
            Kind::Main => "the main function",
            Kind::Test => "a test function",
        }
    }
}

/// The workers an `#[unplug::test]` runtime gets unless told: two, so that
/// a test exercises what a single worker never does (wake-ups and steals
/// between workers, a task completing on another thread than the one
/// awaiting it) while staying cheap next to one worker per CPU when the
/// harness runs many tests at once.
const TEST_DEFAULT_WORKERS: usize = 2;

pub(crate) fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let (args, mut errors) = Args::parse(attr);

    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("{} goes on an `async fn`: {e}", kind.attr()),
            );
            let errors = combine(errors, e).to_compile_error();
            // The item as written, so the errors are only these.
            return quote!(#item #errors);
        }
    };

    // Problems the expansion can live with: reported, and the expansion is
    // still produced so the compiler says nothing more.
    if func.sig.asyncness.is_none() {
        errors = Some(combine(
            errors,
            syn::Error::new_spanned(
                func.sig.fn_token,
                format!(
                    "{} needs an `async fn`: add `async` before `fn`",
                    kind.attr()
                ),
            ),
        ));
    }
    if kind == Kind::Test {
        let (tests, rest): (Vec<_>, Vec<_>) = func
            .attrs
            .drain(..)
            .partition(|a| is_test_attribute(a.path()));
        func.attrs = rest;
        for attr in tests {
            errors = Some(combine(
                errors,
                syn::Error::new_spanned(
                    attr,
                    "#[unplug::test] adds `#[test]` itself: remove this one",
                ),
            ));
        }
    }

    // Problems it cannot: reported alone.
    let mut fatal = None;
    if !func.sig.inputs.is_empty() || func.sig.variadic.is_some() {
        let span = func
            .sig
            .variadic
            .as_ref()
            .map_or_else(|| func.sig.inputs.span(), |v| v.span());
        fatal = Some(syn::Error::new(
            span,
            format!("{} cannot take arguments", kind.what()),
        ));
    }
    if !func.sig.generics.params.is_empty() || func.sig.generics.where_clause.is_some() {
        // `Generics` prints without its where clause: a function generic
        // through a where clause alone is pointed at there.
        let message = format!("{} cannot be generic", kind.what());
        let error = match &func.sig.generics.where_clause {
            Some(clause) if func.sig.generics.params.is_empty() => {
                syn::Error::new_spanned(clause, message)
            }
            _ => syn::Error::new_spanned(&func.sig.generics, message),
        };
        fatal = Some(combine(fatal, error));
    }
    if let Some(fatal) = fatal {
        let errors = combine(errors, fatal).to_compile_error();
        // A stand-in so `main` is not reported missing on top.
        let stub = match kind {
            Kind::Main => {
                let ident = &func.sig.ident;
                quote!(#[allow(dead_code)] fn #ident() {})
            }
            Kind::Test => TokenStream::new(),
        };
        return quote!(#stub #errors);
    }

    let expanded = generate(kind, &args, func);
    let errors = errors.map(|e| e.to_compile_error());
    quote!(#expanded #errors)
}

fn generate(kind: Kind, args: &Args, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    sig.asyncness = None;

    // Locals the body cannot see or shadow.
    let body = Ident::new("body", Span::mixed_site());
    let rt = Ident::new("rt", Span::mixed_site());

    // The body's value is bound with the function's return type, so the
    // compiler knows that type while checking the body: `?` converts into
    // the declared error type, and a mismatch is reported at the body's tail
    // expression, not at the attribute. A body that diverges (ends in
    // `panic!()`) makes the read of the binding unreachable; that read is
    // ours, so its warning is silenced on it alone, not on the body.
    let out = Ident::new("out", Span::mixed_site());
    // No binding for a type a `let` cannot name: one with an `impl Trait`
    // anywhere in it (`Result<(), impl Debug>`), or `!` (experimental in a
    // `let`; the call below then ends in `unreachable!`).
    let never = matches!(&sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let output = match &sig.output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) if !never && !mentions_impl(&ty.to_token_stream()) => {
            Some(quote!(#ty))
        }
        ReturnType::Type(..) => None,
    };
    let body_expr = match output {
        Some(output) => quote! {
            async move {
                let #out: #output = #block;
                #[allow(unreachable_code)]
                #out
            }
        },
        None => quote!(async move #block),
    };

    let mut setup = TokenStream::new();
    let mut checks = TokenStream::new();
    match (&args.workers, kind) {
        (Some(n), _) => {
            setup.extend(quote_spanned!(n.span()=> .workers(#n)));
            checks.extend(quote_spanned! {n.span()=>
                #[allow(clippy::assertions_on_constants)]
                const _: () = ::core::assert!(
                    #n <= ::unplug::MAX_WORKERS,
                    "`workers` is more than unplug::MAX_WORKERS",
                );
            });
        }
        (None, Kind::Test) => {
            let n = syn::LitInt::new(&TEST_DEFAULT_WORKERS.to_string(), Span::call_site());
            setup.extend(quote!(.workers(#n)));
        }
        (None, Kind::Main) => {}
    }
    if let Some(pin) = &args.pin_workers {
        setup.extend(quote_spanned!(pin.span()=> .pin_workers(#pin)));
    }
    if let Some(name) = &args.thread_name {
        setup.extend(quote_spanned!(name.span()=> .thread_name(#name)));
    }

    let test_attr = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => TokenStream::new(),
    };
    let message = format!("{}: cannot build the runtime: {{}}", kind.attr());
    let unreachable = if never {
        quote!(; ::core::unreachable!("an `async fn` returning `!` returned"))
    } else {
        TokenStream::new()
    };
    let sig = sig.into_token_stream();

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #checks
            let #body = #body_expr;
            let #rt = ::unplug::Runtime::builder()
                #setup
                .build()
                .unwrap_or_else(|e| ::core::panic!(#message, e));
            // The runtime is dropped (its workers stopped and joined) when
            // the function returns or unwinds.
            #rt.block_on(#body)
            #unreachable
        }
    }
}

/// Does `tokens` contain the keyword `impl` (at any depth)?
fn mentions_impl(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "impl",
        proc_macro2::TokenTree::Group(g) => mentions_impl(&g.stream()),
        _ => false,
    })
}

/// `#[test]`, also written as a path to the prelude's (`#[::core::prelude::v1::test]`,
/// `#[std::prelude::rust_2021::test]`).
fn is_test_attribute(path: &syn::Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test",
        [root, .., last] => last == "test" && (root == "core" || root == "std"),
        _ => false,
    }
}
