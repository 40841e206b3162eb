"""Where the files of SMN4Lang (ds004078) are, in the data set and in the registry.

Run ``R`` of a subject is ``story_R`` (the authors' code pairs them this way; the
``stim_file`` column of each ``func/*_events.tsv`` names ``audio/story_R.wav``).
"""

from ._fetch import read_registry

ACCESSION = "ds004078"
ANNOTATIONS = "derivatives/annotations/"
MEG_FOLDERS = {
    "meg": "{subject}/meg/",
    "meg-preprocessed": "derivatives/preprocessed_data/{subject}/MEG/",
}


def run_number(story):
    """Return the run number ``R`` of ``"story_R"``."""
    return int(story.split("_")[1])


def run_stem(subject, story):
    """Return ``"sub-XX_task-RDR_run-R"``, the BIDS name stem of a run."""
    return f"{subject}_task-RDR_run-{run_number(story)}"


def meg_files(subject, story, kind):
    """Registry paths of one MEG run: the FIF and the BIDS side files that exist.

    Parameters
    ----------
    subject : str
        ``"sub-01"`` ...
    story : str
        ``"story_1"`` ...
    kind : ``"meg"`` | ``"meg-preprocessed"``
        Raw BIDS runs or the authors' preprocessed derivatives.

    Returns
    -------
    files : dict of str to str
        ``"fif"``, ``"events"``, ``"channels"``, ``"sidecar"`` and
        ``"coordsystem"`` mapped to registry paths, for those in the registry.
    """
    folder = MEG_FOLDERS[kind].format(subject=subject)
    stem = f"{folder}{run_stem(subject, story)}"
    files = {
        "fif": f"{stem}_meg.fif",
        "events": f"{stem}_events.tsv",
        "channels": f"{stem}_channels.tsv",
        "sidecar": f"{stem}_meg.json",
        "coordsystem": f"{folder}{subject}_coordsystem.json",
    }
    registry = read_registry(ACCESSION)
    return {key: name for key, name in files.items() if name in registry}


def stimulus_files(story):
    """Return the audio, the word-level time alignment and the script of a story."""
    return [
        f"stimuli/audio/{story}.wav",
        f"{ANNOTATIONS}time_align/word-level/{story}_word_time.mat",
        f"{ANNOTATIONS}scripts/{story}.txt",
    ]


def fmri_files(subject, story):
    """Paths of a run's preprocessed MNI BOLD and its raw BIDS timing side files.

    Returns
    -------
    files : dict of str to str
        ``"bold"`` (``derivatives/preprocessed_data/sub-XX/MNI/..._bold.nii.gz``),
        ``"events"`` and ``"sidecar"`` (``sub-XX/func/..._events.tsv`` and
        ``..._bold.json``). None of them is in the shipped registry.
    """
    stem = run_stem(subject, story)
    return {
        "bold": f"derivatives/preprocessed_data/{subject}/MNI/{stem}_bold.nii.gz",
        "events": f"{subject}/func/{stem}_events.tsv",
        "sidecar": f"{subject}/func/{stem}_bold.json",
    }
