//! The workspace's layering as its tests see it: no two files import each
//! other (`hack/file-circles.py` resolves every `use` to a file).

#[test]
fn no_two_files_import_each_other() {
    let out = std::process::Command::new("python3")
        .arg("hack/file-circles.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3 runs hack/file-circles.py");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "file circles:\n{said}");
    assert_eq!(said.trim(), "no file circles");
}
