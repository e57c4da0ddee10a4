"""The ``minigpt2`` command: train, sample, finetune, chat, grade, doctor, exercises, translate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_FULL_MARKS = 0
EXIT_NOT_FULL_MARKS = 1
EXIT_CANNOT_GRADE = 2


def cmd_grade(args: argparse.Namespace) -> int:
    from minigpt2.grading.grader import GradingError, format_table, grade_notebook
    from minigpt2.i18n.messages import _

    try:
        report = grade_notebook(args.notebook, cell_timeout=args.timeout)
    except Exception as err:  # the grader's own failure: one line and exit 2, never a traceback
        message = str(err) if isinstance(err, GradingError) else _(
            "the grader itself failed ({type}: {err}); please report it.").format(type=type(err).__name__, err=err)
        if args.json:
            print(json.dumps({"notebook": str(args.notebook), "error": message}, ensure_ascii=False))
        else:
            print(f"minigpt2 grade: {message}", file=sys.stderr)
        return EXIT_CANNOT_GRADE
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else format_table(report))
    return EXIT_FULL_MARKS if report.score == report.max_score else EXIT_NOT_FULL_MARKS


def _report_stale(problems: list[str], command: str) -> int:
    """`--check`: print what is out of date and how to regenerate it; exit status 1 if anything is."""
    for problem in problems:
        print(problem)
    if problems:
        print(f"Run `{command}` to regenerate them.")
    return 1 if problems else 0


def cmd_exercises(args: argparse.Namespace) -> int:
    from minigpt2.grading.generator import GeneratorError, out_of_sync, write_exercises

    try:
        if args.check:
            return _report_stale(out_of_sync(args.solutions, args.exercises), "minigpt2 exercises")
        changed = write_exercises(args.solutions, args.exercises)
    except GeneratorError as err:
        print(f"minigpt2 exercises: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} exercises notebook(s) written; the others were already up to date.")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from minigpt2.i18n.notebooks import TranslationError, out_of_date, write_twins

    if not (args.root / "translations" / args.lang).is_dir():
        print(f"minigpt2 translate: {args.root / 'translations' / args.lang} is not a folder: run this in the course's "
              "repository, or name it with --root.", file=sys.stderr)
        return 2
    try:
        if args.check:
            return _report_stale(out_of_date(args.root, args.lang), "minigpt2 translate")
        written, removed, untranslated = write_twins(args.root, args.lang, partial=args.partial)
    except TranslationError as err:
        print(f"minigpt2 translate: these translations are missing or out of date:\n{err}\n"
              "Translate those cells in the catalogs (or write the others now with --partial).", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:  # an unreadable notebook or catalog, a solution the exercise generator refuses
        print(f"minigpt2 translate: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for path in removed:
        print(f"removed {path} (its catalog is gone)")
    for problem in untranslated:
        print(f"left in English: {problem}")
    print(f"{len(written)} notebook(s) written; the others were already up to date.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from minigpt2.doctor import run_doctor

    return run_doctor()


def cmd_train(argv: list[str]) -> int:
    from minigpt2.train import main

    return main(argv)


def cmd_sample(argv: list[str]) -> int:
    from minigpt2.train import sample_main

    return sample_main(argv)


def cmd_finetune(argv: list[str]) -> int:
    from minigpt2.finetune.cli import finetune_main

    return finetune_main(argv)


def cmd_chat(argv: list[str]) -> int:
    from minigpt2.finetune.cli import chat_main

    return chat_main(argv)


FORWARDED = {"train": cmd_train, "sample": cmd_sample, "finetune": cmd_finetune, "chat": cmd_chat}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigpt2", description="GPT-2, built one piece at a time.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = sub.add_parser(
        "grade",
        help="run an exercises notebook headless and score it",
        description="Run a notebook headless in a fresh kernel and score its exercises. "
        f"Exit status: {EXIT_FULL_MARKS} full marks, {EXIT_NOT_FULL_MARKS} graded but not full marks, "
        f"{EXIT_CANNOT_GRADE} the notebook could not be graded. The notebook file is never modified.",
    )
    grade.add_argument("notebook", type=Path)
    grade.add_argument("--json", action="store_true", help="print the report as JSON")
    grade.add_argument("--timeout", type=float, default=60,
                       help="seconds one cell, or one call of an exercise's function, may run before its kernel is "
                       "ended (default 60; a call gets at most 10)")
    grade.set_defaults(run=cmd_grade)

    exercises = sub.add_parser("exercises", help="write exercises/ from solutions/ (solution regions become stubs)")
    exercises.add_argument("--solutions", type=Path, default=Path("solutions"))
    exercises.add_argument("--exercises", type=Path, default=Path("exercises"))
    exercises.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    exercises.set_defaults(run=cmd_exercises)

    from minigpt2.i18n.notebooks import LANGUAGES

    translate = sub.add_parser(
        "translate",
        help="write the translated notebooks (notebooks/zh/, solutions/zh/, exercises/zh/) from translations/",
        description="Write notebooks/LANG/, solutions/LANG/ and exercises/LANG/ from the English notebooks and their "
        "catalogs in translations/LANG/ (one .po file per notebook): prose from the catalog, code, outputs and widgets "
        "from the English notebook. Only notebooks with a catalog are written. A prose cell without a translation, or "
        "whose English text changed since it was translated, is an error that names the notebook and the cells.",
    )
    translate.add_argument("--lang", default="zh", choices=LANGUAGES, help="the language to write (default zh)")
    translate.add_argument("--root", type=Path, default=Path("."), help="the course repository (default: here)")
    translate.add_argument("--check", action="store_true",
                           help="write nothing; exit 1 if a translated notebook is out of date")
    translate.add_argument("--partial", action="store_true",
                           help="while a translation is in progress: keep the English text of the cells it lacks")
    translate.set_defaults(run=cmd_translate)

    doctor = sub.add_parser("doctor", help="check that this machine is ready for the course")
    doctor.set_defaults(run=cmd_doctor)

    # Listed here for `minigpt2 --help`; main() hands their arguments to their own parsers.
    sub.add_parser("train", help="train a model (minigpt2 train --help)")
    sub.add_parser("sample", help="sample from a checkpoint (minigpt2 sample --help)")
    sub.add_parser("finetune", help="fine-tune GPT-2 as a classifier or an instruction follower (minigpt2 "
                                    "finetune --help)")
    sub.add_parser("chat", help="talk to an instruction-tuned model in the terminal (minigpt2 chat --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FORWARDED:
        # Everything after `train` / `sample` / `finetune` / `chat` belongs to that command's own parser, options first
        # included (argparse's REMAINDER would refuse a leading `--preset`).
        return FORWARDED[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
