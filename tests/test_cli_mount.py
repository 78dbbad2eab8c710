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


def _run_without_training(*arguments: str) -> subprocess.CompletedProcess:
    """`leadscore ARGUMENTS` where `training` cannot be imported, as in the serving image."""
    script = (
        "import sys\nsys.modules['training'] = None\nfrom leadscore import cli\n"
        f"sys.argv = ['leadscore', *{list(arguments)!r}]\ncli.main()"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_a_command_the_serving_install_lacks_says_which_image_has_it():
    done = _run_without_training("retrain", "--database-url", "sqlite://")
    assert done.returncode == 1
    assert "`leadscore retrain` is not in this install" in done.stderr
    assert "Python module 'training" in done.stderr and "--target full" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_serving_install_lists_its_commands_and_names_the_missing_ones():
    done = _run_without_training("--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout and "keys" in done.stdout
    epilog = " ".join(done.stdout.split()).split("Not in this install:")[1]
    assert epilog.startswith(" train, score, promote, retrain (use the full image")
