//! The container image's recipe, checked without building it (building needs
//! a release build; `make image` does it with buildah, see hack/image.sh).

const DOCKERFILE: &str = include_str!("../../Dockerfile");
const IMAGE_SCRIPT: &str = include_str!("../../hack/image.sh");
const CARGO_BUILD: &str = "cargo build --release --locked --bin matview";

#[test]
fn the_dockerfile_and_the_local_image_build_the_same_way_and_run_non_root() {
    assert!(
        DOCKERFILE.contains(CARGO_BUILD),
        "Dockerfile builds with {CARGO_BUILD}"
    );
    assert!(
        IMAGE_SCRIPT.contains(CARGO_BUILD),
        "hack/image.sh builds with {CARGO_BUILD}"
    );
    // Every crate of the workspace reaches the build stage.
    for copied in [
        "COPY Cargo.toml Cargo.lock",
        "COPY src ",
        "COPY crates ",
        "COPY benches ",
    ] {
        assert!(DOCKERFILE.contains(copied), "Dockerfile: {copied}");
    }
    let stages: Vec<&str> = DOCKERFILE
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages.len(),
        2,
        "multi-stage: build, then runtime: {stages:?}"
    );
    assert!(
        stages[1].contains("distroless") && stages[1].ends_with(":nonroot"),
        "{stages:?}"
    );
    for recipe in [DOCKERFILE, IMAGE_SCRIPT] {
        assert!(recipe.contains("USER 65532:65532"), "non-root user");
        assert!(
            recipe.contains(r#"ENTRYPOINT ["/usr/local/bin/matview"]"#),
            "exec-form entrypoint, no shell needed"
        );
        assert!(
            recipe.contains("org.opencontainers.image.title"),
            "OCI labels"
        );
    }
    // The pods the chart and the operator run use the image's user.
    let helpers = include_str!("../../charts/matview/templates/_helpers.tpl");
    assert!(helpers.contains("runAsUser: 65532"));
    let pod = include_str!("../../crates/matview-operator/src/pod.rs");
    assert!(
        pod.contains("const NON_ROOT: i64 = 65532;") && pod.contains("run_as_user: Some(NON_ROOT)")
    );
}
