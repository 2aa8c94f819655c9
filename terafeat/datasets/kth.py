"""KTH human actions (Schuldt, Laptev & Caputo, ICPR 2004).

25 persons perform 6 actions in 4 scenarios; the files are named
``personPP_<action>_dD_uncomp.avi`` (599 of them: person 13 lacks
handclapping in d3). The six zips unpack flat, or one folder per action:
both work, as does any other file name suffix of VIDEO_EXTENSIONS.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from terafeat.datasets.folders import check_folder, layout_frame, list_videos

KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_SCENARIOS = {1: "outdoors", 2: "outdoors, scale variation",
                 3: "outdoors, different clothes", 4: "indoors"}
#: The fixed person split of Schuldt et al. 2004 (Sec. 4), repeated on the
#: data set's page, https://www.csc.kth.se/cvap/actions/. Le et al. (CVPR
#: 2011), after Wang et al. (BMVC 2009), train on train + validation (16
#: persons) and test on the 9 test persons.
KTH_PERSON_SPLIT = {
    "train": (11, 12, 13, 14, 15, 16, 17, 18),
    "validation": (19, 20, 21, 23, 24, 25, 1, 4),
    "test": (22, 2, 3, 5, 6, 7, 8, 9, 10),
}
_SPLIT_OF_PERSON = {person: split for split, persons in KTH_PERSON_SPLIT.items()
                    for person in persons}
_NAME = re.compile(r"person(?P<person>\d\d)_(?P<action>[a-z]+)_d(?P<scenario>\d)(?:_uncomp)?")
COLUMNS = ["path", "label", "person", "scenario", "group", "split"]


def parse_kth_name(name: str) -> dict:
    """person (1..25), label (the action), scenario (1..4) and split of a KTH file name.

    ``name`` may be a path; its suffix is ignored. Raises ValueError naming
    the file and what does not fit.
    """
    stem = Path(name).name.split(".")[0]
    match = _NAME.fullmatch(stem)
    if match is None:
        raise ValueError(f"{name}: not a KTH name (personPP_<action>_dD_uncomp.avi)")
    person, action, scenario = (int(match["person"]), match["action"], int(match["scenario"]))
    if action not in KTH_ACTIONS:
        raise ValueError(f"{name}: unknown action {action!r}, expected one of {KTH_ACTIONS}")
    if scenario not in KTH_SCENARIOS:
        raise ValueError(f"{name}: scenario d{scenario} is not one of d1..d4")
    if person not in _SPLIT_OF_PERSON:
        raise ValueError(f"{name}: person {person:02d} is not one of KTH's persons 01..25")
    return {"label": action, "person": person, "scenario": scenario,
            "split": _SPLIT_OF_PERSON[person]}


def read_kth(root, strict: bool = True) -> pd.DataFrame:
    """KTH videos found anywhere under ``root``, one row per clip.

    Returns a DataFrame with columns path (str), label (action), person
    (int 1..25), scenario (int 1..4, see KTH_SCENARIOS), group (= person, for
    :func:`~terafeat.datasets.folders.group_folds`) and split ("train",
    "validation" or "test", KTH_PERSON_SPLIT). Names that do not parse, and a
    second file of the same clip (an .avi and an .mp4), are problems: raised
    as LayoutError when ``strict``, else warned about, left out and listed in
    ``frame.attrs["problems"]``.
    """
    root = check_folder(root)
    rows, problems, seen = [], [], {}
    for path in list_videos(root, recursive=True):
        try:
            fields = parse_kth_name(path.name)
        except ValueError as error:
            problems.append((str(path), str(error)))
            continue
        clip = (fields["person"], fields["label"], fields["scenario"])
        if clip in seen:
            problems.append((str(path), f"same clip as {seen[clip]}"))
            continue
        seen[clip] = path
        rows.append({"path": str(path), **fields, "group": fields["person"]})
    return layout_frame(rows, COLUMNS, root, problems, strict)
