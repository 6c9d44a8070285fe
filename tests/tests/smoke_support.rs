//! The test support itself: the kit builds from inside a test run and answers.

#[test]
fn kit_builds_and_answers_help() {
    let sb = wb_tests::Sandbox::new();
    let run = wb_tests::Run::from(sb.kit(&["deploy", "--help"]).output().unwrap());
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("  cargo xtask deploy <verb> [FILE] [--json]"),
        "{}",
        run.stdout
    );
}
