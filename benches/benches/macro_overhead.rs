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
//! loop whose rounds interleave the variants (see `per_call_ns`).

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
    run(f
        .ctx
        .scope(f.incoming.clone().scope(by_hand("why?", f.ctx.clone()))))
    .unwrap()
}

fn call_annotated_nested(f: &Fixture) -> usize {
    run(f.ctx.scope(f.incoming.clone().scope(annotated("why?")))).unwrap()
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

/// Nanoseconds per call of each variant: the fastest of several rounds,
/// the variants interleaved in every round, because other processes on a
/// shared machine only ever add time, and add it to all variants alike.
fn per_call_ns(f: &Fixture, calls: &[fn(&Fixture) -> usize]) -> Vec<f64> {
    const ROUNDS: usize = 21;
    const CALLS: u32 = 200_000;
    let mut best = vec![f64::INFINITY; calls.len()];
    for _ in 0..ROUNDS {
        for (call, best) in calls.iter().zip(&mut best) {
            let start = Instant::now();
            for _ in 0..CALLS {
                black_box(call(black_box(f)));
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(CALLS);
            *best = best.min(ns);
        }
    }
    best
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
    let [hand, hand_validating, macro_, hand_nested, macro_nested] = ns[..] else {
        unreachable!("one figure per variant")
    };
    println!();
    println!("with_context overhead per call (no subscriber; fastest of 21 rounds x 200k calls):");
    println!(
        "  handler vs a context validated once and passed by hand: {:>6.1} ns  ({macro_:.1} vs {hand:.1} ns; includes validating the context)",
        macro_ - hand
    );
    println!(
        "  handler vs the same validation and scope written by hand: {:>6.1} ns  ({macro_:.1} vs {hand_validating:.1} ns; the macro's own cost)",
        macro_ - hand_validating
    );
    println!(
        "  helper inside an enclosing context, vs passed by hand:  {:>6.1} ns  ({macro_nested:.1} vs {hand_nested:.1} ns)",
        macro_nested - hand_nested
    );
}
