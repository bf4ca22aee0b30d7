//! The arguments of `#[unplug::main(..)]` and `#[unplug::test(..)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitBool, LitInt, LitStr, Meta, MetaNameValue, Token};

/// The arguments every macro takes, each at most once.
const KNOWN: &str = "`workers = <integer>`, `pin_workers = <bool>`, `thread_name = \"<name>\"`";

/// What the attribute asked for; `None` keeps the builder's (or the
/// macro's) default.
#[derive(Default)]
pub(crate) struct Args {
    /// The literal itself, so the expansion can point at it.
    pub(crate) workers: Option<LitInt>,
    pub(crate) pin_workers: Option<LitBool>,
    pub(crate) thread_name: Option<LitStr>,
}

impl Args {
    /// Parses the attribute's tokens. Every problem found is returned
    /// (combined into one `syn::Error`) together with the arguments that
    /// were valid, so the expansion can still be produced and the user sees
    /// only the errors that are theirs.
    pub(crate) fn parse(tokens: TokenStream) -> (Args, Option<syn::Error>) {
        let mut args = Args::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(metas) => metas,
            Err(e) => {
                let e = syn::Error::new(
                    e.span(),
                    format!("{e}; expected arguments of the form `name = value`: {KNOWN}"),
                );
                return (args, Some(e));
            }
        };
        let mut errors = None;
        for meta in metas {
            if let Err(e) = args.apply(meta) {
                errors = Some(combine(errors, e));
            }
        }
        (args, errors)
    }

    fn apply(&mut self, meta: Meta) -> syn::Result<()> {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            other => {
                let path = other.path();
                let name = path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "argument".to_owned());
                return Err(syn::Error::new_spanned(
                    &other,
                    format!("`{name}` needs a value (`name = value`); expected one of {KNOWN}"),
                ));
            }
        };
        let Some(name) = nv.path.get_ident().map(ToString::to_string) else {
            return Err(unknown(&nv));
        };
        match name.as_str() {
            "workers" => {
                let lit = match literal(&nv) {
                    Some(Lit::Int(lit)) => lit.clone(),
                    _ if matches!(&nv.value, Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_))) => {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "`workers` must be a positive integer, e.g. `workers = 2`",
                        ))
                    }
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &nv.value,
                            "`workers` expects an integer literal, e.g. `workers = 2`",
                        ))
                    }
                };
                if !matches!(lit.suffix(), "" | "usize") {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        format!("`workers` is a `usize`; drop the `{}` suffix", lit.suffix()),
                    ));
                }
                if lit.base10_digits().starts_with('-') {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "`workers` must be a positive integer, e.g. `workers = 2`",
                    ));
                }
                let n: usize = lit.base10_parse().map_err(|e| {
                    syn::Error::new_spanned(&lit, format!("`workers` must fit a `usize`: {e}"))
                })?;
                if n == 0 {
                    return Err(syn::Error::new_spanned(
                        &lit,
                        "`workers = 0`: a runtime needs at least one worker",
                    ));
                }
                set(&mut self.workers, lit, &name, &nv)
            }
            "pin_workers" => match literal(&nv) {
                Some(Lit::Bool(lit)) => set(&mut self.pin_workers, lit.clone(), &name, &nv),
                _ => Err(syn::Error::new_spanned(
                    &nv.value,
                    "`pin_workers` expects `true` or `false`",
                )),
            },
            "thread_name" => match literal(&nv) {
                Some(Lit::Str(lit)) => {
                    if lit.value().contains('\0') {
                        return Err(syn::Error::new_spanned(
                            lit,
                            "`thread_name` contains a NUL byte, which no OS thread name may",
                        ));
                    }
                    set(&mut self.thread_name, lit.clone(), &name, &nv)
                }
                _ => Err(syn::Error::new_spanned(
                    &nv.value,
                    "`thread_name` expects a string literal, e.g. `thread_name = \"my-app\"`",
                )),
            },
            _ => Err(unknown(&nv)),
        }
    }
}

/// The literal on the right of `name = value`, if it is one.
fn literal(nv: &MetaNameValue) -> Option<&Lit> {
    match &nv.value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn set<T>(slot: &mut Option<T>, value: T, name: &str, nv: &MetaNameValue) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            &nv.path,
            format!("`{name}` is given more than once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn unknown(nv: &MetaNameValue) -> syn::Error {
    let path = &nv.path;
    syn::Error::new_spanned(
        path,
        format!(
            "unknown argument `{}`; expected one of {KNOWN}",
            quote::quote!(#path).to_string().replace(' ', "")
        ),
    )
}

/// `first` followed by `next`.
pub(crate) fn combine(first: Option<syn::Error>, next: syn::Error) -> syn::Error {
    match first {
        Some(mut first) => {
            first.combine(next);
            first
        }
        None => next,
    }
}
