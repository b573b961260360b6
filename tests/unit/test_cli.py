from __future__ import annotations

import subprocess
import sys

import pytest

from cpworker import cli


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_no_arguments_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: cpworker" in capsys.readouterr().out


def test_the_operator_process_never_loads_the_kubernetes_client() -> None:
    # kopf would import it (40 MiB resident) when it is installed, as it is here. Everything
    # `cpworker run` loads before it starts kopf is imported: runner, handlers, the stages.
    probe = (
        "import sys\n"
        "from cpworker import cli\n"
        "try:\n"
        "    cli.main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "import cpworker.runner, cpworker.preflight, cpworker.jobtemplate\n"
        "cpworker.jobtemplate._job_validator()\n"
        "assert 'kopf' in sys.modules and 'cpworker.handlers' in sys.modules\n"
        "print(sorted(m for m, v in sys.modules.items() if v is not None and "
        "m.split('.')[0] in {'kubernetes', 'kubernetes_validate', 'pykube', 'arrow', 'lark'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]", out
