"""Helpers shared by the Python suites: run the shopflow binary, read JSONL files."""

import subprocess


def run(shopflow, *args):
    """Runs `shopflow ARGS`, failing the test with its stderr if it exits non-zero; returns stdout."""
    proc = subprocess.run([shopflow, *map(str, args)], capture_output=True, timeout=900)
    assert proc.returncode == 0, (f"shopflow {' '.join(map(str, args))} exited {proc.returncode}:\n"
                                  + proc.stderr.decode(errors="replace")[-3000:])
    return proc.stdout.decode()


def read_lines(path):
    """The lines of a written file, as bytes; a final newline does not start another line."""
    assert path.is_file(), f"{path.name} was not written"
    data = path.read_bytes()
    return data.removesuffix(b"\n").split(b"\n") if data else []
