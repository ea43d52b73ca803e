//! What a user sees when starting the example: no warning. The crate's
//! own tables (the worker's outbox and processed-messages tables, the
//! conversation memory, the summaries) pass the start-up audit, the
//! performance check included, so the binary's start-up output (its logs
//! and its instructions) carries no `WARN` or `ERROR` line.
#![cfg(unix)]

mod common;

use common::binary::Running;

#[test]
fn start_up_prints_no_warning() {
    let service = Running::start(&[]);
    assert!(
        service.start_up.iter().any(|l| l.contains(" INFO ")),
        "the logs are not in the captured output: {:#?}",
        service.start_up
    );
    assert_eq!(
        service.warnings(),
        Vec::<&String>::new(),
        "start-up: {:#?}",
        service.start_up
    );
    let (exit, rest) = service.terminate();
    assert!(exit.success(), "exit status {exit:?}; output: {rest:?}");
}
