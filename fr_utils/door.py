"""``facedoor``: the door scenario on the command line, over a :class:`FaceDatabase` file.

    facedoor enroll NAME IMAGE... | DIR      add photos of someone
    facedoor enroll-tree ROOT                enrol every ROOT/<name>/ folder
    facedoor verify NAME IMAGE               OPEN (exit 0) or CLOSED (exit 1)
    facedoor identify IMAGE... [--all]       who is it? (exit 1 if anyone is unknown)
    facedoor list | remove NAME | rename OLD NEW
    facedoor serve [--port P]                the same over HTTP, the model loaded once

Run ``facedoor --help`` for the options and exit codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from fr_utils.database import FaceDatabase, check_name, image_files
from fr_utils.errors import (
    EmptyDatabaseError,
    FaceDatabaseError,
    FaceImageError,
    RequestRefused,
    SimilarFaceWarning,
    SimilarNameWarning,
    SkippedImagesWarning,
    UnknownPersonError,
    WeightsError,
    report,
)
from fr_utils.images import load_image
from fr_utils.matching import METRICS, check_threshold, is_match
from fr_utils.serve import _ServiceDown, find_service

PROG = "facedoor"
DEFAULT_DB = "faces.db"
ENV_DB = "FACEDOOR_DB"

EXIT_OK = 0        # done; verify: OPEN; identify: everyone identified
EXIT_NO = 1        # verify: CLOSED; identify: someone unknown
EXIT_INPUT = 2     # usage or bad input
EXIT_DATABASE = 3  # the database or the model cannot be used

EPILOG = f"""\
database:
  --db PATH, else ${ENV_DB}, else ./{DEFAULT_DB}. 'enroll' creates the file if
  it does not exist (or is empty); the other commands need it to exist. 'list',
  'verify' and 'identify' only read it (a read-only file or folder is fine).
  Nothing is written to a file that fails SQLite's integrity check.

enrolment:
  A photo whose face already matches another enrolled person, or a name that
  prints like an enrolled one, is warned about; with --strict it is refused
  (exit 2). Names are stored in Unicode NFC; invisible and control characters
  are refused.

exit codes:
  0  done; verify: OPEN (same person); identify: every photo identified
  1  verify: CLOSED (not that person); identify: someone unknown
  2  usage or bad input: bad option, unknown name, bad name, empty or missing
     database, photo with no face, unreadable image (identify answers the other
     photos), --strict refusal
  3  the database or the model cannot be used: corrupt file, not a face
     database, built with another model, unwritable location or read-only file
     (for enroll, remove, rename), weights or their manifest missing or invalid

a running service:
  'verify', 'identify' and 'enroll' send their photos to a 'facedoor serve'
  running for the same database file (it records its address in
  DB.serve.json) and answer in milliseconds: same output, same exit codes.
  Without one (or with --no-service) they load the model themselves (15-25 s).

Errors go to stderr as '{PROG}: error: ...'; results go to stdout (as one JSON
document with --json). A match is distance < threshold; the default
threshold is the model's, chosen on LFW View 1 (euclidean; the cosine one is
t^2/2, since ||a-b||^2 = 2 - 2cos for unit vectors).
"""


class _InputError(Exception):
    """Bad input found by the command line itself (exit 2)."""


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check_threshold(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after the command's name."""
    opt = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("--db", metavar="PATH", help=f"the database file (default: ${ENV_DB} or ./{DEFAULT_DB})",
                        **({"default": None} if defaults else opt))
    parser.add_argument("--metric", choices=METRICS, help="distance: euclidean (L2, default) or cosine (1 - cos)",
                        **({"default": "euclidean"} if defaults else opt))
    parser.add_argument("--threshold", type=_threshold, metavar="T",
                        help="match when distance < T, 0 < T < 2 (default: the model's, for --metric)",
                        **({"default": None} if defaults else opt))
    parser.add_argument("--json", action="store_true", help="print results as JSON",
                        **({"default": False} if defaults else opt))
    parser.add_argument("--no-service", action="store_true",
                        help="encode in this process even when a 'facedoor serve' runs for the database",
                        **({"default": False} if defaults else opt))


def build_parser() -> argparse.ArgumentParser:
    """The ``facedoor`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A face-recognition door: enrol people, then verify a claimed identity "
                    "or identify who is in a photo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p, defaults=False)
        return p

    p = command("enroll", "add photos of NAME (creates the person and the database if needed)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="IMAGE|DIR",
                   help="photos, or folders of photos; each photo's face is used (the largest, or the most central of faces about as large)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) a photo that matches another enrolled person, or a look-alike name")
    p = command("enroll-tree", "enrol every ROOT/<name>/ folder of photos as <name>")
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) a photo that matches another enrolled person, or a look-alike name")
    p = command("verify", "is the person in IMAGE really NAME? prints the distance and OPEN or CLOSED "
                "(NAME first; IMAGE NAME is read the other way round when NAME is enrolled and IMAGE a file)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("image", metavar="IMAGE")
    p = command("identify", "who is in each IMAGE? prints the name, or 'unknown', and the distance")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--all", action="store_true", help="every face in the photo, not only the door's")
    command("list", "list the people enrolled and how many photos each has")
    p = command("remove", "delete NAME and all their embeddings")
    p.add_argument("name", metavar="NAME")
    p = command("serve", "answer enroll/verify/identify/list over HTTP (JSON), the model loaded once "
                         "(see fr_utils/serve.py and docs/door.md)")
    from fr_utils.serve import add_arguments

    add_arguments(p)
    p = command("rename", "rename OLD to NEW")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--strict", action="store_true", help="refuse (exit 2) a NEW that looks like an enrolled name")
    return parser


# --------------------------------------------------------------------------- commands


def _enroll_photos(args) -> list[Path]:
    """The photos ``enroll`` will encode, checked before the database is opened or TensorFlow loads:
    a bad name, a folder without images, a single bad photo or a batch of only bad ones fail at once."""
    check_name(args.name)
    paths: list = []
    for item in args.images:
        path = Path(item)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise _InputError(f"{path}: no image files in this folder")
            paths.extend(files)
        else:
            paths.append(path)
    problems = _unusable(paths)
    if len(problems) == len(paths):
        if len(paths) == 1:
            raise FaceImageError(problems[0][1])
        listing = "; ".join(why for _, why in problems)
        raise FaceImageError(f"nothing enrolled for {args.name!r}: no usable image ({listing})")
    return paths


def _enroll_through_service(args, paths: list, single: bool) -> tuple[int, list, list] | None:
    """(added, skipped [(file, reason)], warnings) of enrolling ``paths`` one request each through
    the service; None when there is none or it stopped answering (then everything is enrolled
    in-process: the photos it stored already are skipped there as already enrolled)."""
    if getattr(args, "client", None) is None or (args.strict and len(paths) > 1):
        return None  # --strict with several photos stores nothing of a refused batch: in-process only
    added, skipped, said = 0, [], []
    for path in paths:
        try:
            check_photo(path)
            answer = _through_service(args, lambda c: c.post("/enroll", path, _settings(args, name=args.name,
                                                                                          strict=args.strict)))
        except (FaceImageError, RequestRefused) as err:
            if single or isinstance(err, RequestRefused) and (err.exit_code != EXIT_INPUT or err.status == 409):
                raise
            prefix = f"{path}: "
            skipped.append((str(path), str(err)[len(prefix):] if str(err).startswith(prefix) else str(err)))
            continue
        if answer is None:
            return None
        added += int(answer["added"])
        said += answer.get("warnings", [])
    if skipped and added == 0 and len(skipped) == len(paths):
        listing = "; ".join(f"{f}: {why}" for f, why in skipped)
        raise FaceImageError(f"nothing enrolled for {args.name!r}: no usable image ({listing})")
    return added, skipped, said


def _enroll(db: FaceDatabase, args, out: dict) -> int:
    paths = args.paths if getattr(args, "paths", None) is not None else _enroll_photos(args)
    single = len(args.images) == 1 and not Path(args.images[0]).is_dir()
    images = paths[0] if single else paths
    remote = _enroll_through_service(args, paths, single)
    if remote is not None:
        added, skipped, said = remote
        for message in said:
            print(f"{PROG}: warning: {message}", file=sys.stderr)
            out.setdefault("warnings", []).append(message)
        for file, why in skipped:
            print(f"{PROG}: warning: skipped {file}: {why}", file=sys.stderr)
        skipped = [{"file": file, "reason": why} for file, why in skipped]
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            added = db.enroll(args.name, images, progress=_show_progress(args, len(paths)), strict=args.strict)
        skipped = _skipped(caught, out)
    total = len(db.embeddings(args.name)) if args.name in db else 0
    out.update(name=args.name, added=added, embeddings=total, skipped=skipped)
    if not args.json:
        already = len(paths) - added - len(skipped)
        note = f", {already} already enrolled" if already else ""
        print(f"enrolled {args.name}: {added} new photo(s){note}, {total} in all")
    return EXIT_OK


def _enroll_tree(db: FaceDatabase, args, out: dict) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        added = db.enroll_tree(args.root, progress=_show_progress(args, 2), strict=args.strict)
    skipped = _skipped(caught, out)
    people = [{"name": n, "added": k, "embeddings": len(db.embeddings(n)) if n in db else 0} for n, k in added.items()]
    out.update(people=people, skipped=skipped)
    if not args.json:
        for p in people:
            print(f"enrolled {p['name']}: {p['added']} new photo(s), {p['embeddings']} in all")
    return EXIT_OK


def _verify_order(db: FaceDatabase, args) -> None:
    """``verify IMAGE NAME``: swapped back (with a note) when only that reading makes sense, an error
    saying the order otherwise; ``verify NAME IMAGE`` is left alone."""
    if args.name in db or not Path(args.name).is_file():
        return
    if args.image in db and not Path(args.image).exists():  # unambiguous: a photo first, a name second
        print(f"{PROG}: note: {args.name!r} is a file and {args.image!r} an enrolled name: read as "
              f"'verify {args.image} {args.name}' (the order is NAME IMAGE)", file=sys.stderr)
        args.name, args.image = args.image, args.name
        return
    raise _InputError(f"{args.name!r} is a file, not an enrolled name: the order is "
                      f"'{PROG} verify NAME IMAGE' (the name first, then the photo)")


def _verify(db: FaceDatabase, args, out: dict) -> int:
    _verify_order(db, args)
    db._person_id(args.name)   # an unknown name, then a bad photo, before TensorFlow loads
    check_photo(args.image)
    answer = _through_service(args, lambda c: c.post("/verify", args.image, _settings(args, name=args.name)))
    if answer is not None:
        distance, match = float(answer["distance"]), bool(answer["match"])
    else:
        distance, match = db.verify(args.image, args.name)
    decision = "OPEN" if match else "CLOSED"
    out.update(name=args.name, image=args.image, distance=distance, threshold=db.threshold,
               metric=db.metric, match=match, decision=decision)
    if not args.json:
        sign = "<" if match else ">="
        print(f"{decision}: {args.image} vs {args.name}: distance {distance:.3f} {sign} "
              f"threshold {db.threshold:.3f} ({db.metric})")
    return EXIT_OK if match else EXIT_NO


def _identify(db: FaceDatabase, args, out: dict) -> int:
    if len(db) == 0:
        raise EmptyDatabaseError(f"{db.name}: no one is enrolled yet (enrol someone first: {PROG} enroll NAME PHOTO)")
    threshold = db.threshold
    results, code = [], EXIT_OK
    for image in args.images:
        try:
            check_photo(image)  # before TensorFlow loads
            answer = _through_service(args, lambda c: c.post("/identify", image, _settings(args, all=args.all)))
            if args.all:
                if answer is not None:
                    faces = answer["faces"]
                else:
                    faces = db.identify_all(image)
                    if not faces:
                        raise _InputError(f"{image}: no face found")
                result = {"image": image, "faces": [
                    {"box": [int(v) for v in f["box"]], "confidence": float(f["confidence"]), "name": f["name"],
                     "distance": float(f["distance"]), "nearest": f["nearest"]} for f in faces]}
                known = any(f["name"] is not None for f in faces)
            else:
                if answer is not None:
                    nearest, distance = answer["nearest"], float(answer["distance"])
                else:
                    nearest, distance = db.nearest(db.encode(image))[0]
                name = nearest if is_match(distance, threshold) else None
                result = {"image": image, "name": name, "distance": distance, "nearest": nearest}
                known = name is not None
        except RequestRefused as err:  # the service's answer: the message in-process would give
            if err.exit_code != EXIT_INPUT:
                raise
            report(err, EXIT_INPUT, PROG)
            results.append({"image": image, "error": str(err)})
            code = EXIT_INPUT
            continue
        except (_InputError, ValueError) as err:  # FaceImageError and NoFaceError are ValueErrors
            report(err, EXIT_INPUT, PROG)
            results.append({"image": image, "error": str(err)})
            code = EXIT_INPUT
            continue
        results.append(result)
        if not known and code == EXIT_OK:
            code = EXIT_NO
        if not args.json:
            _print_identity(result, threshold)
    out.update(threshold=threshold, metric=db.metric, results=results)
    return code


def _print_identity(result: dict, threshold: float) -> None:
    def line(name, distance, nearest) -> str:
        if name is not None:
            return f"{name} (distance {distance:.3f})"
        return f"unknown (nearest: {nearest}, distance {distance:.3f} >= threshold {threshold:.3f})"

    if "faces" in result:
        for i, f in enumerate(result["faces"], 1):
            print(f"{result['image']}: face {i} at {f['box']}: {line(f['name'], f['distance'], f['nearest'])}")
    else:
        print(f"{result['image']}: {line(result['name'], result['distance'], result['nearest'])}")


def _list(db: FaceDatabase, args, out: dict) -> int:
    people, info = db.people(), db.info()
    out.update(database=db.name, model=info.get("model_name"), created=info.get("created"), people=people)
    if not args.json:
        total = sum(p["embeddings"] for p in people)
        print(f"{db.name}: {len(people)} people, {total} photos"
              + (f", model {info['model_name']}" if info.get("model_name") else ""))
        for p in people:
            print(f"  {p['name']}: {p['embeddings']} photo(s), enrolled {p['enrolled']}")
    return EXIT_OK


def _remove(db: FaceDatabase, args, out: dict) -> int:
    count = db.remove(args.name)
    out.update(removed=args.name, embeddings=count)
    if not args.json:
        print(f"removed {args.name} ({count} photo(s))")
    return EXIT_OK


def _rename(db: FaceDatabase, args, out: dict) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db.rename(args.old, args.new, strict=args.strict)
    _skipped(caught, out)
    out.update(renamed=args.old, to=args.new)
    if not args.json:
        print(f"renamed {args.old} to {args.new}")
    return EXIT_OK


COMMANDS = {
    "enroll": _enroll, "enroll-tree": _enroll_tree, "verify": _verify, "identify": _identify,
    "list": _list, "remove": _remove, "rename": _rename,
}
CREATES = {"enroll", "enroll-tree"}
READS = {"list", "verify", "identify"}  # opened read-only: they never write
FORWARDED = {"verify", "identify", "enroll"}  # sent to a running service for the same database, if any
ENV_NO_SERVICE = "FACEDOOR_NO_SERVICE"  # set (non-empty): as --no-service


# --------------------------------------------------------------------------- plumbing


def _settings(args, **query) -> dict:
    """A request's query: the command's metric and threshold (the service then decides as this
    command would in-process), and ``query``."""
    return dict(query, metric=args.metric, threshold=None if args.threshold is None else repr(args.threshold))


def _through_service(args, call):
    """``call(client)`` through the running service, or None when there is none, or when it stopped
    answering (a note on stderr; this command then goes on in its own process)."""
    client = getattr(args, "client", None)
    if client is None:
        return None
    try:
        return call(client)
    except _ServiceDown as err:
        print(f"{PROG}: note: {err}; going on in this process (loading the model)", file=sys.stderr)
        client.close()
        args.client = None
        return None


def _find_service(args, db_path: str) -> None:
    """``args.client``: the running ``facedoor serve`` for this database, if any (not for --no-service)."""
    args.client = None
    if args.no_service or args.command not in FORWARDED or os.environ.get(ENV_NO_SERVICE):
        return
    args.client, note = find_service(db_path)
    if note:
        print(f"{PROG}: note: {note}; answering in this process (loading the model)", file=sys.stderr)
    elif args.client is None and sys.stderr.isatty():
        print(f"{PROG}: note: no 'facedoor serve' runs for {db_path}: loading the model here (15-25 s); "
              f"'{PROG} --db {db_path} serve' keeps it loaded and answers at once", file=sys.stderr)


def check_photo(image) -> None:
    """Raise :class:`FaceImageError` naming ``image`` (a path or bytes) unless it decodes as an image.

    Checked before the model loads: a missing file, a folder, a FIFO or device, a file that is
    not an image, a truncated one or one over the size limits fails in milliseconds, with the
    message the encoder would give after the model had loaded (about 13 s later)."""
    load_image(image)


def _unusable(paths) -> list[tuple[str, str]]:
    """(path, message) of each photo :func:`check_photo` refuses."""
    problems = []
    for path in paths:
        try:
            check_photo(path)
        except FaceImageError as err:
            problems.append((str(path), str(err)))
    return problems



def _skipped(caught, out: dict) -> list[dict]:
    """Print the warnings of an enrolment on stderr; returns the skipped files (for JSON),
    and records the other warnings under ``out['warnings']``."""
    skipped = []
    for w in caught:
        if isinstance(w.message, SkippedImagesWarning):
            for file, why in w.message.skipped:
                print(f"{PROG}: warning: skipped {file}: {why}", file=sys.stderr)
                skipped.append({"file": file, "reason": why})
        elif isinstance(w.message, (SimilarFaceWarning, SimilarNameWarning)):
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
            out.setdefault("warnings", []).append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return skipped


def _show_progress(args, n: int) -> bool:
    return not args.json and n > 1 and sys.stderr.isatty()


def main(argv: list[str] | None = None) -> int:
    """Run ``facedoor`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed by argparse
        return int(exit_.code or 0)
    db_path = args.db or os.environ.get(ENV_DB) or DEFAULT_DB
    out: dict = {"command": args.command}
    try:
        missing = [i for i in getattr(args, "images", []) + [getattr(args, "root", None)] if i and not Path(i).exists()]
        if args.command in CREATES and missing:  # before the database file is created
            raise _InputError(f"{missing[0]}: no such file or folder")
        if args.command == "serve":  # creates the database if needed, like enroll
            from fr_utils.serve import serve

            return serve(db_path, host=args.host, port=args.port, max_upload_mb=args.max_upload,
                         metric=args.metric, threshold=args.threshold, verbose=args.verbose, prog=PROG,
                         detect_side=args.detect_side, max_batch=args.max_batch,
                         batch_wait_ms=args.batch_wait, precision=args.precision)
        if args.command == "enroll-tree" and not Path(args.root).is_dir():
            raise _InputError(f"{args.root}: not a folder (enroll-tree enrols each ROOT/<name>/ folder)")
        if args.command == "enroll":  # before the database file is created, and before TensorFlow loads
            args.paths = _enroll_photos(args)
        if args.command not in CREATES and not Path(db_path).exists():
            raise _InputError(f"no database at {db_path} (enrol someone first with '{PROG} enroll NAME PHOTO', "
                              f"or pass --db PATH / set {ENV_DB})")
        if argv is None:  # a facedoor process (not a caller's): it encodes a photo or a few, then exits
            from fr_utils.encoding import quick_start

            quick_start()  # a graph quick to build beats one quick to run (TensorFlow is not imported here)
        with FaceDatabase(db_path, metric=args.metric, threshold=args.threshold,
                          create=args.command in CREATES, read_only=args.command in READS) as db:
            _find_service(args, db_path)
            try:
                code = COMMANDS[args.command](db, args, out)
            finally:
                if getattr(args, "client", None) is not None:
                    args.client.close()
    except RequestRefused as err:  # the service's answer, with the exit code in-process would give
        return report(err, err.exit_code, PROG)
    except (FaceDatabaseError, WeightsError) as err:
        return report(err, EXIT_DATABASE, PROG)
    except OSError as err:  # a file the database or the model needs, unreadable
        return report(f"{getattr(err, 'filename', None) or db_path}: {err.strerror or err}", EXIT_DATABASE, PROG)
    except (_InputError, UnknownPersonError, EmptyDatabaseError, FaceImageError, ValueError) as err:
        return report(err, EXIT_INPUT, PROG)
    except KeyboardInterrupt:
        return report("interrupted (everything enrolled before is kept)", 130, PROG)
    if args.json:
        print(json.dumps(out, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
