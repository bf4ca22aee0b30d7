//! The `#[unplug::main]` and `#[unplug::test]` attribute macros.
//!
//! Use them through the `unplug` crate, which re-exports both; the
//! expansion names the runtime as `::unplug`, so the crate that uses them
//! must depend on `unplug` under that name.
//!
//! Both take the same arguments, each at most once, comma-separated:
//!
//! | argument | builder call | default |
//! |---|---|---|
//! | `workers = N` (integer literal, 1..=`unplug::MAX_WORKERS`) | `Builder::workers(N)` | `main`: one per CPU; `test`: 2 |
//! | `pin_workers = true` or `false` | `Builder::pin_workers(..)` | `false` |
//! | `thread_name = "name"` (no NUL byte) | `Builder::thread_name(..)` | `"unplug-worker"` |
//!
//! A bad argument, a function that is not `async`, or one with parameters
//! or generics is a compile error pointing at the offending tokens.
#![warn(missing_docs)]

mod args;
mod expand;

use expand::Kind;
use proc_macro::TokenStream;

/// Runs `async fn main` on an unplug runtime.
///
/// The function becomes a plain `fn main` that builds an
/// `unplug::Runtime` with `unplug::Runtime::builder()`, applies the
/// arguments, and `block_on`s the body; the runtime is dropped (its workers
/// stopped and joined) when `main` returns. A return type such as
/// `Result<(), E>` is kept, and `?` works in the body. If the runtime cannot
/// be built, `main` panics with the `BuildError`.
///
/// Arguments (all optional): `workers = N` (default: one worker per CPU
/// the process may use), `pin_workers = true|false`, `thread_name = "..."`.
///
/// ```
/// #[unplug::main(workers = 2, thread_name = "app")]
/// async fn main() -> Result<(), std::num::ParseIntError> {
///     let n: u32 = "20".parse()?;
///     let doubled = unplug::spawn(async move { n * 2 }).await.unwrap();
///     assert_eq!(doubled, 40);
///     assert_eq!(unplug::Handle::current().workers().len(), 2);
///     Ok(())
/// }
/// ```
///
/// expands to (roughly; an illustration, not compiled)
///
/// ```ignore
/// fn main() -> Result<(), std::num::ParseIntError> {
///     let body = async move { /* the body */ };
///     let rt = ::unplug::Runtime::builder()
///         .workers(2)
///         .thread_name("app")
///         .build()
///         .unwrap_or_else(|e| panic!("#[unplug::main]: cannot build the runtime: {}", e));
///     rt.block_on(body)
/// }
/// ```
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Main, attr.into(), item.into()).into()
}

/// Runs an `async fn` test on its own unplug runtime.
///
/// The function becomes a `#[test]` that builds an `unplug::Runtime`,
/// `block_on`s the body, and drops the runtime when the test returns or
/// panics. Other attributes stay (`#[should_panic]`, `#[ignore]`, ...);
/// `-> Result<(), E>` works like in any test. Do not add `#[test]`
/// yourself.
///
/// Arguments: as for `#[unplug::main]`, but `workers` defaults to **2**,
/// not one per CPU: two workers already exercise what one never does
/// (wake-ups and steals between workers, a task completing on another
/// thread than its awaiter), while the harness running many tests at once
/// does not start a full set of workers per test.
///
/// ```no_run
/// // (`no_run`: a doctest is not built with `--test`, so the harness would
/// // not run these; `tests/macros.rs` in the unplug repository does.)
/// #[unplug::test]
/// async fn two_workers_by_default() {
///     assert_eq!(unplug::Handle::current().workers().len(), 2);
///     assert_eq!(unplug::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
///
/// #[unplug::test(workers = 1)]
/// #[should_panic(expected = "boom")]
/// async fn panics_propagate() {
///     panic!("boom");
/// }
///
/// #[unplug::test(workers = 3, pin_workers = false)]
/// async fn results_work() -> Result<(), std::num::ParseIntError> {
///     let n: usize = "3".parse()?;
///     assert_eq!(unplug::Handle::current().workers().len(), n);
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Test, attr.into(), item.into()).into()
}
