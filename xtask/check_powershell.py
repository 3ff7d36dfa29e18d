"""Parses adjoin's PowerShell with a real PowerShell grammar (tree-sitter-pwsh).

No PowerShell runs where the tests do, so this is what catches a syntax error in
scripts/windows/*.ps1 before a Windows host does. It parses:

- each scripts/windows/*.ps1 on its own, and
- each Windows SSM document's script as the service sends it: the runCommand lines of
  the adjoin-*-Windows documents in infra/*.yaml (the parameter assignments, common.ps1,
  tools.ps1 and the task's script, as `adjoin documents --write-templates` wrote them),
  joined with newlines as SSM Agent does, each `{{ NAME }}` replaced by a base64 value
  as SSM substitutes it.

Prints `OK <name>` for each text that parses, else every ERROR and MISSING node with
its line:column and the source line; exits 1 when any text has one.

Usage: python check_powershell.py [ROOT] (ROOT: the repository, by default this file's
parent directory's parent).
"""

import json
import re
import sys
from pathlib import Path

import tree_sitter_pwsh
from tree_sitter import Language, Parser

# tree-sitter-pwsh, not tree-sitter-powershell (0.26.4), whose grammar rejects valid
# comma lists of bare words as command arguments (`Remove-Variable -Name a, b`).
POWERSHELL = Language(tree_sitter_pwsh.language())

# What SSM puts in place of a document parameter: a base64 literal (the parameters'
# allowedPattern), here that of "adjoin".
SAMPLE_VALUE = "YWRqb2lu"


def problems(source: bytes):
    """(line, byte column, description) of each ERROR and MISSING node of `source`,
    1-based."""
    tree = Parser(POWERSHELL).parse(source)
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_missing:
            where = ""
            if node.parent is not None:
                row, column = node.parent.start_point
                where = f" (in the {node.parent.type} from {row + 1}:{column + 1})"
            found.append((node.start_point, f"MISSING {node.type!r}{where}"))
        elif node.is_error:
            lines = node.end_point.row - node.start_point.row + 1
            found.append((node.start_point, f"ERROR ({lines} line(s))"))
        if node.has_error:
            stack.extend(node.children)
    # A tree with an error always has an ERROR or MISSING node, but never let a check
    # pass on a tree that says it has an error.
    if tree.root_node.has_error and not found:
        found.append((tree.root_node.start_point, "ERROR (the tree has an error)"))
    return sorted((row + 1, column + 1, what) for (row, column), what in found)


def check(name: str, source: str) -> bool:
    """Prints the result for one text; True when it parses."""
    found = problems(source.encode("utf-8"))
    if not found:
        print(f"OK {name}")
        return True
    lines = source.encode("utf-8").split(b"\n")
    for line, column, what in found:
        raw = lines[line - 1] if line - 1 < len(lines) else b""
        text = raw.decode("utf-8", "replace").rstrip("\r")
        column = len(raw[: column - 1].decode("utf-8", "replace")) + 1
        print(f"{name}:{line}:{column}: {what}")
        print(f"    {text}")
        print(f"    {' ' * (column - 1)}^")
    return False


def windows_documents(template: Path):
    """(name, runCommand lines) of each aws:runPowerShellScript document in `template`.

    Each document's Content is a JSON block (valid YAML) indented under `Content:`."""
    lines = template.read_text(encoding="utf-8").split("\n")
    documents = []
    for i, line in enumerate(lines):
        if line.strip() != "Content:":
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following)
        try:
            content = json.loads("\n".join(block))
        except json.JSONDecodeError:
            continue
        name = next(
            (
                l.split(":", 1)[1].strip()
                for l in reversed(lines[:i])
                if l.strip().startswith("Name:") and len(l) - len(l.lstrip()) == indent
            ),
            f"line {i + 1}",
        )
        for step in content.get("mainSteps", []):
            if step.get("action") == "aws:runPowerShellScript":
                documents.append((f"{template.name}:{name}", step["inputs"]["runCommand"]))
    return documents


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    ok = True
    scripts = sorted((root / "scripts/windows").glob("*.ps1"))
    if not scripts:
        print(f"no scripts in {root / 'scripts/windows'}")
        return 1
    for script in scripts:
        ok &= check(str(script.relative_to(root)), script.read_text(encoding="utf-8"))
    documents = [d for t in sorted((root / "infra").glob("*.yaml")) for d in windows_documents(t)]
    if not documents:
        print(f"no Windows SSM documents in {root / 'infra'}/*.yaml")
        return 1
    for name, run_command in documents:
        script = re.sub(r"\{\{ *[A-Za-z0-9_]+ *\}\}", SAMPLE_VALUE, "\n".join(run_command))
        ok &= check(name, script)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
