//! The cost `#[with_context]` adds to one call, with no `tracing`
//! subscriber installed.
//!
//! Each variant calls the same body, polled to completion once with a no-op
//! waker (the futures never wait, so no runtime is needed and none is
//! measured), inside the same incoming-context scope (`Incoming::scope`,
//! which the HTTP layer would have set):
//!
//! * `by_hand`: the context was validated once, outside, and is passed as an
//!   argument (`ctx.clone()`), the way code without the macro would do it;
//! * `by_hand_validating`: a hand-written handler that does what the macro
//!   does for one: validates the incoming context, puts it in scope, calls
//!   the body (no span);
//! * `annotated`: `#[with_context(tenant, agent)]` validates the incoming
//!   raw context on every call (a handler);
//! * `annotated_nested` / `by_hand_nested`: the same inside an enclosing
//!   validated scope (a helper called from a handler), where the macro
//!   reuses the enclosing context instead of validating again.
//!
//! Every variant also opens the context scope and a span (disabled, as no
//! subscriber is installed); the by-hand variants do neither, so the
//! difference is everything the macro adds.
//!
//! Run: `cargo bench -p tenant-benches --bench macro_overhead`. After
//! divan's table it prints the added cost per call, from a plain timing
//! loop whose rounds interleave the variants (see `per_call_ns`): medians
//! over rounds of the per-round differences.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};

#[with_context(tenant, agent)]
async fn annotated(question: &str, ctx: Ctx<Validated<WithAgent>>) -> Result<usize, ContextError> {
    Ok(body(question, &ctx))
}

async fn by_hand(question: &str, ctx: Ctx<Validated<WithAgent>>) -> Result<usize, ContextError> {
    Ok(body(question, &ctx))
}

async fn by_hand_validating(question: &str) -> Result<usize, ContextError> {
    let incoming = Incoming::current().ok_or(ContextError::TenantRequired)?;
    let ctx: Ctx<Validated<WithAgent>> = incoming.validate().await?;
    ctx.scope(by_hand(question, ctx.clone())).await
}

#[inline(never)]
fn body(question: &str, ctx: &Ctx<Validated<WithAgent>>) -> usize {
    black_box(question).len() + ctx.tenant_id().as_str().len() + ctx.agent_id().as_str().len()
}

/// Polls a future that never waits.
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the benchmarked future waited"),
    }
}

struct Fixture {
    incoming: Incoming,
    ctx: Ctx<Validated<WithAgent>>,
}

fn fixture() -> Fixture {
    let raw = Ctx::unvalidated().with_tenant("acme").with_agent("agent-7");
    Fixture {
        ctx: raw.validate().expect("a valid fixture"),
        incoming: Incoming::new(raw),
    }
}

fn call_by_hand(f: &Fixture) -> usize {
    run(f.incoming.clone().scope(by_hand("why?", f.ctx.clone()))).unwrap()
}

fn call_by_hand_validating(f: &Fixture) -> usize {
    run(f.incoming.clone().scope(by_hand_validating("why?"))).unwrap()
}

fn call_annotated(f: &Fixture) -> usize {
    run(f.incoming.clone().scope(annotated("why?"))).unwrap()
}

fn call_by_hand_nested(f: &Fixture) -> usize {
    // The incoming context outside, the enclosing validated one inside: an
    // `Incoming` scope is a request boundary that hides any outer context.
    run(f
        .incoming
        .clone()
        .scope(f.ctx.scope(by_hand("why?", f.ctx.clone()))))
    .unwrap()
}

fn call_annotated_nested(f: &Fixture) -> usize {
    run(f.incoming.clone().scope(f.ctx.scope(annotated("why?")))).unwrap()
}

#[divan::bench]
fn by_hand_call(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench_local(|| call_by_hand(&f));
}

#[divan::bench]
fn by_hand_validating_call(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench_local(|| call_by_hand_validating(&f));
}

#[divan::bench]
fn annotated_call(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench_local(|| call_annotated(&f));
}

#[divan::bench]
fn by_hand_nested_call(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench_local(|| call_by_hand_nested(&f));
}

#[divan::bench]
fn annotated_nested_call(b: divan::Bencher<'_, '_>) {
    let f = fixture();
    b.bench_local(|| call_annotated_nested(&f));
}

/// Nanoseconds per call of each variant in each round; the variants are
/// interleaved in every round, so that a busy moment on a shared machine
/// slows the variants of that round alike.
fn per_call_ns(f: &Fixture, calls: &[fn(&Fixture) -> usize]) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(ROUNDS); calls.len()];
    for _ in 0..ROUNDS {
        for (call, samples) in calls.iter().zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..CALLS {
                black_box(call(black_box(f)));
            }
            samples.push(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
        }
    }
    samples
}

const ROUNDS: usize = 21;
const CALLS: u32 = 200_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median over rounds of `a - b`, each pair measured in the same round,
/// and the median of `a` and of `b`.
fn added(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let diff = a.iter().zip(b).map(|(x, y)| x - y).collect();
    (median(diff), median(a.to_vec()), median(b.to_vec()))
}

fn main() {
    let f = fixture();
    assert_eq!(
        call_by_hand(&f),
        call_annotated(&f),
        "the variants compute the same"
    );
    assert_eq!(call_by_hand(&f), call_by_hand_validating(&f));
    assert_eq!(call_by_hand_nested(&f), call_annotated_nested(&f));

    divan::main();

    // `cargo bench` passes `--bench`; `cargo test --benches` runs this
    // binary without it, as a smoke test, in a debug build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ns = per_call_ns(
        &f,
        &[
            call_by_hand,
            call_by_hand_validating,
            call_annotated,
            call_by_hand_nested,
            call_annotated_nested,
        ],
    );
    let [hand, hand_validating, macro_, hand_nested, macro_nested] = &ns[..] else {
        unreachable!("one series per variant")
    };
    println!();
    println!(
        "with_context overhead per call (no subscriber; medians over {ROUNDS} interleaved rounds x {CALLS} calls):"
    );
    let (d, m, h) = added(macro_, hand);
    println!(
        "  handler vs a context validated once and passed by hand: {d:>6.1} ns  ({m:.1} vs {h:.1} ns; includes validating the context)"
    );
    let (d, m, h) = added(macro_, hand_validating);
    println!(
        "  handler vs the same validation and scope written by hand: {d:>6.1} ns  ({m:.1} vs {h:.1} ns; the macro's own cost)"
    );
    let (d, m, h) = added(macro_nested, hand_nested);
    println!(
        "  helper inside an enclosing context, vs passed by hand:  {d:>6.1} ns  ({m:.1} vs {h:.1} ns)"
    );
}
