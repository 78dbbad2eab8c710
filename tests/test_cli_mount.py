"""The `leadscore` command mounts only the module of the command it runs (the port of `leadscore
serve` opens sooner), and the table that says which module owns which command stays true."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from leadscore.cli import COMMAND_MODULES

HEAVY = ("pandas", "sklearn", "mlflow", "pyarrow", "matplotlib")


def _registered_by(module_name: str) -> set[str]:
    app = typer.Typer()
    importlib.import_module(module_name).register(app)
    names = {command.name for command in app.registered_commands}
    names |= {group.name for group in app.registered_groups}
    return names


def test_each_command_is_listed_under_the_module_that_registers_it():
    for module_name in set(COMMAND_MODULES.values()):
        listed = {command for command, owner in COMMAND_MODULES.items() if owner == module_name}
        assert _registered_by(module_name) == listed, module_name


def test_the_full_app_has_every_listed_command():
    from leadscore.cli import app

    command = typer.main.get_command(app)
    assert set(COMMAND_MODULES) | {"version", "quickstart"} == set(command.commands)


def _modules_loaded_by(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    return {name.split(".")[0] for name in out}


def test_serve_loads_no_data_or_model_library_before_its_port_opens():
    loaded = _modules_loaded_by(
        "from leadscore import cli\n"
        "sys.argv = ['leadscore', 'serve', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass"
    )
    assert "serving" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_app_uvicorn_binds_needs_only_the_standard_library():
    loaded = _modules_loaded_by("import serving.boot") - _modules_loaded_by("pass")
    ours_and_third_party = loaded - set(sys.stdlib_module_names) - {"serving"}
    assert ours_and_third_party == set(), sorted(ours_and_third_party)
