"""``brats-kit data prepare``: the course's competition from a downloaded BraTS release."""
from __future__ import annotations

from pathlib import Path

import click

from brats_kit.progress import click_progress
from brats_kit.text import safe_name, safe_text

#: Shared by 'data prepare' and 'data synth'.
HIDDEN_TEST = click.option(
    "--hidden-test", "n_hidden", default=0, show_default=True, type=click.IntRange(0),
    help="Hidden test slices for the code track: inputs and truth under private/ only (students never get them).",
)


def _ranking(ctx, param, value):
    if value is not None:
        from grader.leaderboard.ranking import ranking_type

        value = ranking_type(value).name  # an unknown or pooled score: a named error (exit 1), before any work
    return value


#: Shared by 'data prepare' and 'data synth': the leaderboard's ranking score, kept in the private manifest.
RANKING = click.option(
    "--ranking", default=None, metavar="SCORE", callback=_ranking,
    help="The score the leaderboard ranks by, recorded in private/manifest.json: dice (default), hd95, "
         "lesion_dice, lesion_hd95 or nsd.",
)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Competition directory to write (student files, and the test truth under private/).")
@click.option("--train", "n_train", default=256, show_default=True, type=click.IntRange(1), help="Training patients.")
@click.option("--test", "n_test", default=29, show_default=True, type=click.IntRange(1), help="Test patients.")
@click.option("--seed", default=None, type=click.IntRange(0, 2**63 - 1),
              help="Patient shuffle, random slice, public/private split; same seed, byte-identical files. "
              "Default: a secret random seed, recorded only in DIR/private/manifest.json.")
@click.option("--slice", "slice_rule", type=click.Choice(["largest", "random"]), default="largest", show_default=True,
              help="Axial slice per patient: largest tumour area, or a seeded random slice with tumour.")
@HIDDEN_TEST
@RANKING
@click.option("--force", is_flag=True,
              help="Replace the competition --out already holds (students may hold its public files: its truth changes).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare(source, out, n_train, n_test, seed, slice_rule, n_hidden, ranking, force, as_json):
    """Build the competition from the BraTS release in SOURCE.

    Recognises BraTS 2018-2020, BraTS 2021, BraTS 2023+ glioma and the Medical
    Segmentation Decathlon's Task01_BrainTumour; keeps one normalised axial
    slice per patient; writes both layouts, with the test truth and a manifest
    (source cases, slices, checksums) under DIR/private/. DIR must not hold a
    competition already (unless --force). A broken patient (unreadable, too
    large, NaN or labels outside the release's set, the duplicate of another)
    is skipped and counted, never the whole build.

    \b
    Example:
      brats-kit data prepare MICCAI_BraTS_2018_Data_Training --out competition
    """
    from cohorts.prepare import prepare_competition

    def warn(message):
        click.echo(f"warning: {safe_text(message)}", err=True)

    summary = prepare_competition(
        source, out, n_train=n_train, n_test=n_test, seed=seed, slice_rule=slice_rule,
        progress=click_progress, warn=warn, force=force, n_hidden=n_hidden, ranking=ranking,
    )
    if as_json:
        from brats_kit.output import echo_json

        echo_json(summary.to_dict())
        return
    click.echo(format_prepare_summary(summary))


def format_prepare_summary(summary) -> str:
    """Human-readable lines for :func:`cohorts.prepare.prepare_competition`'s summary."""
    s = summary
    lines = [
        f"recognised {s.source['title']} in {safe_name(s.source['path'])}: {s.found} cases found",
        f"used {s.used} ({s.train} train, {s.test} test: {s.public} public, "
        f"{s.test - s.public} private), skipped {s.n_skipped}, not read {s.not_read}"
        + (" (the skipped are named in the warnings above and in the manifest)" if s.n_skipped else ""),
    ]
    seed = "a secret seed" if s.seed_source.startswith("secret") else f"seed {s.seed}"
    lines.append(f"wrote {safe_name(s.out)}/ ({s.slice_rule} slice, {seed}); "
                 f"test truth and manifest under {safe_name(s.out)}/private/ (the students' files carry no seed)")
    if s.hidden:
        lines.append(f"{s.hidden} hidden test slices for the code track under {safe_name(s.out)}/private/ only")
    return "\n".join(lines)
