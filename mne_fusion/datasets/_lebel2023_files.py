"""Which files of LeBel et al. 2023 (ds003020) a selection needs, and where they lie.

The fetch declaration of the data set (:data:`DATASET`): its subjects, the stories of
the registry, and the registry paths of the stimuli and of the preprocessed responses
(with ``derivative/respdict.json``, the scan lengths the response rows are checked
against). The public loaders of :mod:`~mne_fusion.datasets.lebel2023` and the private
response readers share it.
"""

from ._dataset import OpenNeuroDataset, check_selection
from ._fetch import read_registry

ACCESSION = "ds003020"
#: the nine fMRI subjects of the data set
SUBJECTS = tuple(f"UTS0{k}" for k in range(1, 10))
TEXTGRIDS = "derivative/TextGrids/"
RESPONSES = "derivative/preprocessed_data/"
#: story -> number of volumes of its scans (registry file, hash-checked)
RESPDICT = "derivative/respdict.json"
#: the story every subject heard several times (the test story of the authors)
REPEATED_STORY = "wheretheressmoke"


def registry_stories(subject=None):
    """Stories with a TextGrid (None) or with responses of ``subject``, sorted."""
    prefix, suffix = (
        (TEXTGRIDS, ".TextGrid")
        if subject is None
        else (f"{RESPONSES}{subject}/", ".hf5")
    )
    return sorted(
        p[len(prefix) : -len(suffix)]
        for p in read_registry(ACCESSION)
        if p.startswith(prefix) and p.endswith(suffix) and "/" not in p[len(prefix) :]
    )


def response_path(subject, story):
    """Return the data-set-relative path of a subject's response to a story."""
    return f"{RESPONSES}{subject}/{story}.hf5"


def check_subject_stories(subjects, stories):
    """Raise unless every subject has responses to every story (checked offline)."""
    for subject in subjects:
        check_selection(stories, registry_stories(subject), f"stories of {subject}")


def _select(subjects=None, stories=None):
    # stories are checked per kind: all stories for stimuli, each subject's for
    # responses
    return dict(
        subjects=check_selection(subjects, SUBJECTS, "subjects"), stories=stories
    )


def _stimulus_files(subjects, stories):
    return [
        fname
        for story in check_selection(stories, registry_stories(), "stories")
        for fname in (f"stimuli/{story}.wav", f"{TEXTGRIDS}{story}.TextGrid")
    ]


def _response_files(subjects, stories):
    return [RESPDICT] + [
        response_path(subject, story)
        for subject in subjects
        for story in check_selection(
            stories, registry_stories(subject), f"stories of {subject}"
        )
    ]


DATASET = OpenNeuroDataset(
    ACCESSION,
    _select,
    {"stimuli": _stimulus_files, "responses": _response_files},
    default_kinds=("stimuli", "responses"),
)
