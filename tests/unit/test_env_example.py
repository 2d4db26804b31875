"""`.env.example` lists every environment variable the code reads, and nothing else."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the code reads the environment: the settings (through django-environ's `env`) and the
# few process-level reads outside them (server bind address and workers, metrics directory).
PACKAGES = ("llmops", "routing", "semcache", "budgets")
# Read by the code but owned by the platform, not llmops configuration.
PLATFORM = {"XDG_CACHE_HOME"}


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isupper():
        return node.value
    return None


def _reads(tree: ast.AST) -> set[str]:
    """Return the variable names read in a module: env("X"), env.int("X"), ... (django-environ),
    the budgets settings' _usd("X"), os.environ.get("X"), os.environ["X"] and os.getenv("X")."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if (isinstance(func, ast.Name) and func.id in ("env", "_usd", "getenv")
                    or isinstance(func, ast.Attribute) and (
                        isinstance(func.value, ast.Name) and func.value.id == "env"
                        or func.attr == "getenv"
                        or func.attr == "get" and ast.unparse(func.value) == "os.environ")):
                names.add(_literal(node.args[0]))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(_literal(node.slice))
    return names - {None}


def registry_key_variables() -> set[str]:
    """The provider keys the registry names (routing/providers.py): a key without a setting of
    its name is read from the environment variable of that name."""
    from routing.providers import PROVIDERS

    return {spec.key_setting for spec in PROVIDERS if spec.key_setting}


def code_variables() -> set[str]:
    names: set[str] = registry_key_variables()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            names |= _reads(_parse(path))
    return names - PLATFORM


def _parse(path: Path, attempts: int = 5) -> ast.AST:
    """`ast.parse`, retried: CPython 3.11's AST conversion keeps its recursion depth in state
    shared by threads, so a parse racing a compile elsewhere in the process (the live gateway's
    threads import and compile modules) can fail with "AST constructor recursion depth
    mismatch"; the same parse succeeds when tried again."""
    for attempt in range(attempts):
        try:
            return ast.parse(path.read_text(), filename=str(path))
        except SystemError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_every_variable_the_code_reads_is_in_env_example():
    assert sorted(code_variables() - example_variables()) == []


def test_env_example_lists_nothing_the_code_does_not_read():
    assert sorted(example_variables() - code_variables()) == []


def test_the_scan_sees_reads_of_every_kind():
    # The settings' env() reads, the budgets' _usd() and process-level os.environ reads.
    found = code_variables()
    assert {"DATABASE_URL", "CACHE_SIMILARITY_THRESHOLD", "DEFAULT_DAILY_BUDGET",
            "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"} <= found
