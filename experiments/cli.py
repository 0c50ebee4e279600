"""The `interpsy` console command: thin wrappers over each package's public functions."""
from __future__ import annotations

import importlib
import sys

import click

from experiments.errors import USER_ERROR_EXIT, InterpsyError

# name -> (module:attribute, one-line help). Loaded on use so `--help` never imports torch.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "stimuli": ("stimuli.cli:stimuli", "Sample units, mine exemplars, render visualizations, check sets."),
    "experiment": ("experiments.commands:experiment", "Build experiments from a spec; list them."),
    "db": ("experiments.commands:db", "Database schema migrations (Alembic)."),
    "export": ("experiments.commands:export", "Export an experiment's responses, participants and units."),
    "serve": ("server.cli:serve", "Run the crowdsourcing web server."),
    "lab": ("experiments.lab.cli:lab", "Run in-lab sessions with PsychoPy."),
    "observe": ("stimuli.observers.cli:observe", "Machine observers answer a set's or an experiment's trials."),
    "analyze": ("analysis.cli:analyze", "Scores, statistics, plots and an HTML report from a dataset."),
    "demo": ("experiments.demo:demo", "Run a whole study offline with simulated participants."),
    "tasks": ("experiments.commands:tasks", "List the task types: parameters, answer, chance."),
}


HEAVY_MODULES = {"torch", "torchvision", "timm", "open_clip", "lucent", "psychopy"}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked (help text comes from SUBCOMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module_name, attribute = SUBCOMMANDS[name][0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in HEAVY_MODULES:
                raise
            raise click.ClickException(
                f"'interpsy {name}' needs {exc.name}, which this install lacks: "
                f"pip install 'interpsy[stimuli]' (torch stack) or 'interpsy[lab]' (PsychoPy)"
            ) from exc
        return getattr(module, attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="interpsy")
def cli() -> None:
    """interpsy: measure whether explanations of vision-model units help people."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code USER_ERROR_EXIT."""
    try:
        # Without standalone mode, click returns (not raises) a command's Exit code.
        args = sys.argv[1:] if argv is None else list(argv)
        code = cli.main(args=args, prog_name="interpsy", standalone_mode=False,
                        obj={"argv": args})
    except InterpsyError as exc:
        click.echo(f"error: {exc}", err=True)
        return USER_ERROR_EXIT
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return USER_ERROR_EXIT
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return code if type(code) is int else 0


if __name__ == "__main__":
    sys.exit(main())
