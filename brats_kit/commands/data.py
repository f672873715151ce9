"""``brats-kit data``: build, describe and look at a competition's data."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress
from brats_kit.text import safe_name

from .prepare import HIDDEN_TEST, RANKING

#: Shared by 'data synth' and 'data prepare'.
FORCE_COMPETITION = click.option(
    "--force", is_flag=True,
    help="Replace the competition --out already holds (students may hold its public files: its truth changes).",
)


@click.group()
def data():
    """Build, describe and look at competition data."""


def _register():
    from .prepare import prepare

    data.add_command(prepare)


@data.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Competition directory to write (student files, and the test truth under private/).")
@click.option("--train", "n_train", default=256, show_default=True, type=click.IntRange(1), help="Training slices.")
@click.option("--test", "n_test", default=29, show_default=True, type=click.IntRange(1), help="Test slices.")
@click.option("--seed", default=None, type=click.IntRange(0, 2**128 - 1),
              help="Same seed, byte-identical files (tests, benchmarks), but students holding the kit and the seed "
                   "can regenerate the test truth. Default: a secret 128-bit seed, kept under private/.")
@HIDDEN_TEST
@RANKING
@FORCE_COMPETITION
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
def synth(out, n_train, n_test, seed, n_hidden, ranking, force, as_json):
    """Write the synthetic BraTS-like cohort (built on the MNI152 anatomy nilearn ships).

    DIR must not hold a competition already (unless --force), nor lie in one's private/ folder.
    """
    import warnings

    from cohorts.synth import ReproducibleSeedWarning, write_synthetic_competition

    if seed is not None:
        click.echo(f"warning: --seed {seed}: anyone holding brats-kit and this seed can regenerate the test truth; "
                   "omit --seed for a competition students take part in", err=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReproducibleSeedWarning)  # said above, in the command's words
        written = write_synthetic_competition(out, n_train=n_train, n_test=n_test, seed=seed,
                                              progress=click_progress, force=force, n_hidden=n_hidden,
                                              ranking=ranking)
    if as_json:
        from brats_kit.output import echo_json

        echo_json({"out": str(out), "files": {k: str(v) for k, v in written.items()}, "secret_seed": seed is None})
        return
    shown = safe_name(out)
    click.echo(f"wrote {n_train} training and {n_test} test slices to {shown}/ (test truth under {shown}/private/)")
    if n_hidden:
        click.echo(f"wrote {n_hidden} hidden test slices for the code track under {shown}/private/ only")
    for name in written:
        click.echo(f"  {name}")
    if seed is None:
        click.echo(f"seed: a secret 128-bit seed drawn from the operating system, recorded only in "
                   f"{shown}/private/manifest.json (the students' files carry no seed)")
    click.echo(f"students: 'brats-kit notebook --out .' copies the starting kit (BRATS_KIT_DATA={shown})")
    click.echo(f"give students everything in {shown}/ except private/")


@data.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(directory, as_json):
    """Counts, tumour fraction, per-modality statistics and layouts of DIRECTORY."""
    from data_spec.summary import describe

    summary = describe(directory)
    if as_json:
        from brats_kit.output import echo_json

        echo_json(summary)
        return
    click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    """Human-readable lines for :func:`data_spec.summary.describe`'s output."""
    lines = [f"{safe_name(summary['path'])}"]
    for name, s in list(summary["splits"].items()) + (
        [("test truth (private)", summary["test_truth"])] if "test_truth" in summary else []
    ):
        head = f"  {name}: {s['n_slices']} slices, read from the {s['layout']} layout"
        if "layouts_available" in s:
            head += f" (available: {', '.join(s['layouts_available'])})"
        lines.append(head)
        if "foreground_fraction" in s:
            lines.append(f"    foreground: {100 * s['foreground_fraction']:.1f}% of pixels")
        if "tumour_fraction_of_foreground" in s:
            lines.append(
                f"    tumour: {100 * s['tumour_fraction_of_foreground']:.2f}% of foreground pixels, "
                f"{s['tumour_slices']} slices with tumour"
            )
        elif "tumour_slices" in s:
            lines.append(f"    tumour: {s['tumour_slices']} slices with tumour")
        if "public_cases" in s:
            lines.append(f"    leaderboard: {s['public_cases']} public, {s['private_cases']} private cases")
        for m, st in s.get("modalities", {}).items():
            lines.append(f"    {m:>5}: mean {st['foreground_mean']:+.3f}, std {st['foreground_std']:.3f} (foreground)")
    return "\n".join(lines)


@data.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--case", "cases", multiple=True, default=(0,), show_default=True, type=click.IntRange(0),
              help="Slice index (repeat for several).")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
def show(directory, cases, split, out):
    """The course's figure (T1, T1ce, T2, FLAIR, truth) for some cases of DIRECTORY."""
    from starter.plots import save_course_figure

    from data_spec.layout import check_output_file

    check_output_file(out, what="a PNG figure", recognise=_is_png)
    save_course_figure(directory, out, cases=list(cases), split=split)
    click.echo(f"wrote {safe_name(out)}")


def _is_png(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


_register()
