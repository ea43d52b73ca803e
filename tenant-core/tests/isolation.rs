//! The context cannot leak between tasks: many concurrent tasks, each in its
//! own tenant scope, never observe another task's tenant, however they interleave.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tenant_core::{current, spawn, spawn_blocking, ContextError, Ctx, Validated};

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .validate()
        .expect("a valid tenant")
}

fn current_tenant() -> Result<String, ContextError> {
    current().map(|c| c.tenant_id().as_str().to_owned())
}

/// Yields or sleeps 0 to 1 ms, at random, so tasks interleave on both
/// worker threads and migrate between them.
async fn jitter() {
    let (sleep, micros) = {
        let mut rng = rand::rng();
        (rng.random_bool(0.3), rng.random_range(0..=1000))
    };
    if sleep {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

const TASKS: usize = 10_000;
const TENANTS: usize = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_each_see_only_their_own_context() {
    let tenants: Vec<Ctx<Validated>> = (0..TENANTS).map(|i| ctx(&format!("tenant-{i}"))).collect();
    let mut handles = Vec::with_capacity(TASKS);
    for n in 0..TASKS {
        let mine = tenants[n % TENANTS].clone();
        let other = tenants[(n * 7 + 3) % TENANTS].clone();
        // A plain spawn: the task starts with no context at all.
        handles.push(tokio::spawn(async move {
            assert_eq!(current(), Err(ContextError::NoContext));
            let me = mine.tenant_id().as_str().to_owned();
            let other_name = other.tenant_id().as_str().to_owned();
            let seen = mine
                .scope(async {
                    let mut checks = 0_u32;
                    for _ in 0..3 {
                        jitter().await;
                        assert_eq!(current_tenant().as_deref(), Ok(me.as_str()), "task {n}");
                        checks += 1;
                        other
                            .scope(async {
                                jitter().await;
                                assert_eq!(
                                    current_tenant().as_deref(),
                                    Ok(other_name.as_str()),
                                    "task {n}, inner"
                                );
                                jitter().await;
                                assert_eq!(
                                    current_tenant().as_deref(),
                                    Ok(other_name.as_str()),
                                    "task {n}, inner"
                                );
                            })
                            .await;
                        checks += 2;
                        jitter().await;
                        assert_eq!(
                            current_tenant().as_deref(),
                            Ok(me.as_str()),
                            "task {n}, back"
                        );
                        checks += 1;
                    }
                    checks
                })
                .await;
            assert_eq!(current(), Err(ContextError::NoContext), "task {n}, after");
            (me, seen)
        }));
    }
    let mut per_tenant = vec![0_usize; TENANTS];
    for (n, h) in handles.into_iter().enumerate() {
        let (me, checks) = h.await.expect("no task panicked");
        assert_eq!(me, format!("tenant-{}", n % TENANTS));
        assert_eq!(checks, 12);
        per_tenant[n % TENANTS] += 1;
    }
    assert!(per_tenant.iter().all(|&c| c >= TASKS / TENANTS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tokio_spawn_does_not_inherit_the_context() {
    let seen = ctx("acme")
        .scope(async {
            assert!(current().is_ok());
            tokio::spawn(async { current() }).await.unwrap()
        })
        .await;
    assert_eq!(seen, Err(ContextError::NoContext));

    let seen = ctx("acme")
        .scope(async { tokio::task::spawn_blocking(current).await.unwrap() })
        .await;
    assert_eq!(seen, Err(ContextError::NoContext));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawn_helpers_carry_the_context_on_purpose() {
    let acme = ctx("acme");
    let (free, blocking, method, method_blocking) = acme
        .scope(async {
            let free = spawn(async { current_tenant() }).unwrap().await.unwrap();
            let blocking = spawn_blocking(current_tenant).unwrap().await.unwrap();
            let globex = ctx("globex");
            let method = globex.spawn(async { current_tenant() }).await.unwrap();
            let method_blocking = globex.spawn_blocking(current_tenant).await.unwrap();
            (free, blocking, method, method_blocking)
        })
        .await;
    assert_eq!(free.as_deref(), Ok("acme"));
    assert_eq!(blocking.as_deref(), Ok("acme"));
    assert_eq!(method.as_deref(), Ok("globex"));
    assert_eq!(method_blocking.as_deref(), Ok("globex"));
}

#[tokio::test]
async fn the_spawn_helpers_refuse_to_start_without_a_context() {
    assert_eq!(spawn(async {}).unwrap_err(), ContextError::NoContext);
    assert_eq!(spawn_blocking(|| ()).unwrap_err(), ContextError::NoContext);
}

#[tokio::test]
async fn nested_scope_restores_the_outer_one_after_success_and_error() {
    let outer = ctx("outer");
    let inner = ctx("inner");
    outer
        .scope(async {
            let ok: Result<String, ContextError> = inner.scope(async { current_tenant() }).await;
            assert_eq!(ok.as_deref(), Ok("inner"));
            assert_eq!(current_tenant().as_deref(), Ok("outer"));

            let err: Result<(), String> = inner
                .scope(async {
                    assert_eq!(current_tenant().as_deref(), Ok("inner"));
                    Err("the handler failed".to_owned())
                })
                .await;
            assert!(err.is_err());
            assert_eq!(current_tenant().as_deref(), Ok("outer"));
        })
        .await;
    assert_eq!(current(), Err(ContextError::NoContext));
}

/// Polls `fut`, turning a panic in it into `Err`, as
/// `futures::FutureExt::catch_unwind` does.
async fn catch_unwind<F: std::future::Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_scope_restores_the_outer_one_after_a_panic() {
    let outer = ctx("outer");
    let inner = ctx("inner");
    // Caught in the same task: the outer scope is back after the unwind.
    let after = outer
        .scope(async {
            let caught = catch_unwind(inner.scope(async {
                tokio::task::yield_now().await;
                assert_eq!(current_tenant().as_deref(), Ok("inner"));
                panic!("the handler panicked");
            }))
            .await;
            assert!(caught.is_err());
            current_tenant()
        })
        .await;
    assert_eq!(after.as_deref(), Ok("outer"));
    assert_eq!(current(), Err(ContextError::NoContext));

    // Caught by tokio as a `JoinError`: the spawning task keeps its scope.
    let after = outer
        .scope(async {
            let joined = inner
                .spawn(async { panic!("the background job panicked") })
                .await;
            assert!(joined.unwrap_err().is_panic());
            current_tenant()
        })
        .await;
    assert_eq!(after.as_deref(), Ok("outer"));
}

#[test]
fn nested_sync_scope_restores_the_outer_one_after_a_caught_panic() {
    let outer = ctx("outer");
    let inner = ctx("inner");
    let after = outer.sync_scope(|| {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.sync_scope(|| {
                assert_eq!(current_tenant().as_deref(), Ok("inner"));
                panic!("the handler panicked");
            })
        }));
        assert!(caught.is_err());
        current_tenant()
    });
    assert_eq!(after.as_deref(), Ok("outer"));
    assert_eq!(current(), Err(ContextError::NoContext));
}

#[tokio::test]
async fn nested_scope_restores_the_outer_one_when_dropped_mid_way() {
    use std::task::{Context, Waker};

    let outer = ctx("outer");
    let inner = ctx("inner");
    outer
        .scope(async {
            let mut reached = false;
            {
                let mut fut = Box::pin(inner.scope(async {
                    assert_eq!(current_tenant().as_deref(), Ok("inner"));
                    reached = true;
                    std::future::pending::<()>().await;
                }));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(fut.as_mut().poll(&mut cx).is_pending());
                assert_eq!(current_tenant().as_deref(), Ok("outer"), "between polls");
                // Dropped here, never completed.
            }
            assert!(reached);
            assert_eq!(current_tenant().as_deref(), Ok("outer"));

            // Cancelled by a timeout, the other common way a future is dropped.
            let timed_out = tokio::time::timeout(
                Duration::from_millis(1),
                inner.scope(std::future::pending::<()>()),
            )
            .await;
            assert!(timed_out.is_err());
            assert_eq!(current_tenant().as_deref(), Ok("outer"));
        })
        .await;
}
