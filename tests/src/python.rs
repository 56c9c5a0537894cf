//! The Python clients as the tests drive them: projects built with `python -m build`, twine uploads, pip installs
//! into fresh virtual environments, each with a private home and no user configuration or cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{Server, run, tool};

/// Python tools with a private home, no user configuration and no cache.
pub fn python(home: &Path) -> Command {
    let mut command = Command::new(tool("wharf-python"));
    isolate(&mut command, home);
    command
}

pub fn isolate(command: &mut Command, home: &Path) {
    command
        .env("HOME", home)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
        .env("UV_NO_CONFIG", "1")
        .env_remove("PIP_INDEX_URL")
        .env_remove("UV_INDEX_URL")
        .stdin(Stdio::null());
}

pub fn ok(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "failed: {text}");
    text
}

pub fn failed(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "should have failed: {text}");
    text
}

/// Writes a one-module setuptools project and builds its wheel and sdist; returns the two files.
pub fn build(home: &Path, name: &str, version: &str, deps: &[&str]) -> Vec<PathBuf> {
    let module = name.to_lowercase().replace(['-', '.'], "_");
    let dir = home.join(format!("src-{module}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=77\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"{name} for the Wharf tests\"\n\
             requires-python = \">=3.8\"\ndependencies = [{}]\n\n[tool.setuptools]\npy-modules = [\"{module}\"]\n",
            deps.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{module}.py")),
        format!("VERSION = {version:?}\n"),
    )
    .unwrap();
    ok(&run(python(home).current_dir(&dir).args([
        "-m",
        "build",
        "--no-isolation",
        "--outdir",
        "dist",
    ])));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    files
}

/// twine's upload; `program` is `twine` (the newest) or `twine-6.1` (the newest that offers `--skip-existing` to
/// an index other than PyPI's).
pub fn twine(
    program: &str,
    home: &Path,
    server: &Server,
    repo: &str,
    user: &str,
    password: &str,
    args: &[&str],
) -> Command {
    let mut command = Command::new(tool(program));
    isolate(&mut command, home);
    command
        .args(["upload", "--non-interactive", "--disable-progress-bar"])
        .arg("--repository-url")
        .arg(server.url(&format!("/repository/{repo}/legacy/")))
        .args(["-u", user, "-p", password])
        .args(args);
    command
}

/// A fresh virtual environment without pip of its own; the tools' pip installs into it with `--python`.
pub fn venv(home: &Path, name: &str) -> PathBuf {
    let dir = home.join(name);
    ok(&run(python(home)
        .args(["-m", "venv", "--without-pip"])
        .arg(&dir)));
    dir.join("bin/python")
}

pub fn pip(home: &Path, target: &Path, server: &Server, repo: &str, args: &[&str]) -> Output {
    run(python(home)
        .args(["-m", "pip", "--python"])
        .arg(target)
        .args(args)
        .args(["--no-cache-dir", "--index-url"])
        .arg(server.url(&format!("/repository/{repo}/simple/"))))
}
