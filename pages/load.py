"""Step 1: the victim, its foundation, the private and held-out data, and the suspects."""
from __future__ import annotations

import contextlib

import streamlit as st

from dashboard.auth import current_user
from dashboard.nav import go, routed
from dashboard.state import (
    case_running,
    current_case,
    current_job,
    get_store,
    job_running,
    open_case,
    open_record,
    set_case,
    start_build,
)
from dashboard.suspects import add_answers_suspect, add_many, add_model_suspect, read_list
from dashboard.widgets import many_report, md_text, model_card, show_error
from forensics.audit.build import check_heldout_unseen
from forensics.audit.sources import load_data, load_model, open_foundation
from forensics.audit.spec import AuditSpec
from forensics.cases import casefile
from forensics.cases.case import Case
from forensics.cases.uploads import upload_kept_if_accepted
from forensics.demo import is_demo
from forensics.errors import ForensicsError
from forensics.report.record import read_record
from forensics.runtime import settings
from forensics.runtime.access import allowed_path

env = settings.current()
MAX_ZIP_MB = MAX_ANSWERS_MB = env.max_upload_mb

routed()
st.title("Load the audit")
st.markdown("An audit needs **your model** (the victim), the **foundation** it was fine-tuned from, its "
            "**private training data**, a **held-out set** from the same collection that it never saw, and one "
            "or more **suspects**. Everything runs on this server; nothing is uploaded elsewhere.")

case = current_case()
busy = job_running()
if busy:
    st.info("An audit is running (2 · Shadow models): the victim and the suspects can be changed when it has "
            "finished.", icon=":material/hourglass_top:")

_job = current_job()
if _job is not None and _job.name == "reopen" and _job.status == "failed":
    st.error(f"The audit could not be reopened with its verdicts: {md_text(_job.error)}", icon=":material/error:")
if "restore_error" in st.session_state:
    st.warning(f"The audit in the address could not be reopened: {md_text(st.session_state.pop('restore_error'))}",
               icon=":material/warning:")


def model_upload(uploads: contextlib.ExitStack, upload, shown: dict[str, str]) -> str:
    """The model source of an uploaded weights file or zipped folder, kept in the store only if the block of
    ``uploads`` ends without an error; ``shown`` learns the user's file name for messages."""
    stored = uploads.enter_context(upload_kept_if_accepted(get_store(), upload.getvalue(), upload.name, "model"))
    shown[str(stored)] = upload.name
    return f"local-dir:{stored}" if stored.is_dir() else str(stored)


def start_demo(build: bool) -> None:
    """One click to a verdict: load the demo, start its build, watch it on 2 · Shadow models, end on 4 · Verdict
    (``build`` False: only load it, to change its suspects or settings first)."""
    # FORENSICS_DEMO_QUICK=1 loads the reduced demo (smaller data, fewer epochs), as the tests do
    demo = Case.demo(0, quick=env.demo_quick)
    set_case(demo)
    st.session_state.pop("confirm_demo", None)
    if not build:
        st.toast("Demo loaded: build it on 2 · Shadow models")
        st.rerun()
    start_build(Case(spec=demo.spec, suspects=list(demo.suspects), info=dict(demo.info), id=demo.id),
                then_verdict=True)
    go("shadows")


with st.container(border=True):
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.subheader("Offline demo", anchor=False)
    c1.markdown("A real ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST, with six suspects: four thefts "
                "(direct copy, fine-tuned copy, distilled copy, label-query extraction) and two innocent models "
                "fine-tuned from the same foundation. Runs on a CPU, no network needed. One click builds the audit "
                "and ends on its verdict (about half a minute on two CPU cores the first time).")
    for label, build, kind in (("Load the demo", True, "primary"), ("Load it without building", False, "tertiary")):
        if c2.button(label, type=kind, icon=":material/play_arrow:" if build else None, width="stretch",
                     disabled=busy, help=None if build else "to change its suspects or settings before building"):
            if case.spec is None:
                start_demo(build)
            st.session_state.confirm_demo = "build" if build else "load"
    if st.session_state.get("confirm_demo"):
        done = f" (with its {len(case.verdicts)} verdicts)" if case.verdicts else ""
        st.warning(f"This starts a new audit. The current one{done} is kept under **Recent audits** below and can be "
                   "reopened at any time.", icon=":material/info:")
        c1, c2, _ = st.columns([2, 1, 3])
        if c1.button("Start a new demo audit", type="primary", disabled=busy):
            start_demo(st.session_state.get("confirm_demo") == "build")
        if c2.button("Cancel"):
            st.session_state.pop("confirm_demo", None)
            st.rerun()

recent = casefile.recent_cases(get_store(), 8, owner=current_user())
with st.expander(f"Recent audits ({len(recent)})" if recent else "Recent audits", expanded=case.spec is None
                 and bool(recent)):
    if not recent:
        st.caption("No audit saved yet. Every audit is kept in the artifact store as soon as a victim is loaded.")
    for r in recent:
        c1, c2, c3, c4, c5 = st.columns([4, 3, 2, 1, 1], vertical_alignment="center")
        c1.markdown(f"**{md_text(r.title)}**  \n:gray[audit `{r.id}` · {r.suspects} suspects]")
        c2.caption(f"saved {r.updated.replace('T', ' ')[:16]}")
        running = case_running(r.id)
        c3.markdown(f":blue[{running}]" if running else r.status)
        if r.id == case.id and case.spec is not None:
            c4.caption("open now")
        else:
            if c4.button("Open", key=f"open-{r.id}", disabled=busy):
                try:
                    open_case(r.id)
                    st.rerun()
                except ForensicsError as e:
                    show_error(e)
            if c5.button("Forget", key=f"forget-{r.id}", type="tertiary", disabled=bool(running),
                         help="remove it from this list (its models stay in the artifact store)"):
                casefile.forget_case(get_store(), r.id, owner=current_user())
                st.rerun()
    st.markdown("**Reopen an audit from its record** — an `audit.json` downloaded on **5 · Report** or written by "
                "the CLI's `--json`. "
                "Its verdicts are read from the record; the shadow models come from the artifact store (computed "
                "again only if this store lacks them).")
    c1, c2 = st.columns(2)
    rec_up = c1.file_uploader("Upload audit.json", key="record_upload", max_upload_size=MAX_ANSWERS_MB)
    rec_path = c2.text_input("…or its path on this server", key="record_path", placeholder="/audits/audit.json")
    if st.button("Reopen this record", icon=":material/history:", disabled=busy or (rec_up is None and
                                                                                     not rec_path.strip())):
        try:
            if rec_up is not None:
                rec = read_record(rec_up.getvalue(), rec_up.name, store=get_store().root)
            else:
                path = allowed_path(rec_path.strip(), "audit record")
                if not path.is_file():
                    raise ForensicsError(f"{rec_path.strip()!r} is not a file on this server; give the path of an "
                                         "audit.json, or upload it")
                rec = read_record(path.read_bytes(), path.name, store=get_store().root)
            open_record(rec)
            st.toast("Reopening the audit: 2 · Shadow models shows its progress (seconds when this store holds its "
                     "shadow models)")
            st.rerun()
        except Exception as e:  # noqa: BLE001
            show_error(e)

with st.expander("Audit your own model", expanded=case.spec is not None and not is_demo(case.spec.victim)):
    with st.form("victim_form"):
        st.markdown("**Models** — `hf-hub:ORG/NAME`, `local-dir:/path/to/folder` (timm's `save_for_hf` or a "
                    "transformers checkpoint with its `preprocessor_config.json`), or a path to a `.safetensors` / "
                    "`.pth` file on this server (then give the timm architecture).")
        c1, c2 = st.columns([3, 1])
        victim = c1.text_input("Victim model", placeholder="hf-hub:my-org/my-finetuned-vit")
        victim_rev = c2.text_input("Victim revision", placeholder="main")
        victim_up = st.file_uploader("…or upload the victim: a .safetensors / .pth file (give the timm architecture "
                                     "below) or a zipped folder that timm's save_for_hf wrote", key="victim_upload",
                                     max_upload_size=MAX_ZIP_MB)
        c1, c2 = st.columns([3, 1])
        foundation = c1.text_input("Foundation model", placeholder="hf-hub:timm/vit_base_patch16_224.augreg_in21k")
        foundation_rev = c2.text_input("Foundation revision", placeholder="main")
        c1, c2 = st.columns(2)
        arch = c1.text_input("timm architecture (weights files only)", placeholder="vit_base_patch16_224")
        input_size = c2.number_input("Input size override (0 = the model's own)", 0, 1024, 0, step=16)
        st.markdown("**Data** — on this server: a folder with one subfolder per class, a Hugging Face dataset saved "
                    "with `save_to_disk` (`/data/ds?split=test` picks a split), a `.parquet` / `.arrow` file, an "
                    "imagefolder with `metadata.csv`, or a `.csv` of image paths and labels (other column names: "
                    "`?image=COL&label=COL`); or a zip upload of a class-folder tree (at most "
                    f"{MAX_ZIP_MB} MB).")
        c1, c2 = st.columns(2)
        data_path = c1.text_input("Private training data",
                                  placeholder="/data/private  or  /data/my-dataset?split=train")
        data_zip = c1.file_uploader("…or upload it as a zip", key="data_zip", max_upload_size=MAX_ZIP_MB)
        held_path = c2.text_input("Held-out data (same collection, never seen by the victim)",
                                  placeholder="/data/heldout  or  /data/my-dataset?split=test")
        held_zip = c2.file_uploader("…or upload it as a zip", key="held_zip", max_upload_size=MAX_ZIP_MB)
        submitted = st.form_submit_button("Load victim and data", type="primary", disabled=busy)
    if submitted:
        shown: dict[str, str] = {}  # store paths -> the user's file names, for messages
        try:
            with contextlib.ExitStack() as uploads:  # a refused upload leaves nothing in the store
                def folder(path: str, upload, what: str) -> str:
                    if upload is not None:
                        if upload.size > MAX_ZIP_MB * 1024 ** 2:
                            raise ForensicsError(f"the {what} zip is {upload.size / 1e6:.0f} MB; the limit is "
                                                 f"{MAX_ZIP_MB} MB. "
                                                 "Give a folder path on the server instead")
                        root = str(uploads.enter_context(upload_kept_if_accepted(get_store(), upload.getvalue(),
                                                                                  upload.name, "data")))
                        shown[root] = upload.name
                        return root
                    if not path.strip():
                        raise ForensicsError(f"give the {what} (a folder, dataset or table on this server) or "
                                             "upload it as a zip")
                    return path.strip()

                if victim_up is not None:
                    if victim.strip():
                        raise ForensicsError("give the victim either as a source or as an upload, not both")
                    victim = model_upload(uploads, victim_up, shown)
                if not victim.strip() or not foundation.strip():
                    raise ForensicsError("give both the victim and the foundation it was fine-tuned from")
                data_dir = folder(data_path, data_zip, "private data")
                held_dir = folder(held_path, held_zip, "held-out data")
                with st.spinner("Loading the data, the victim and its foundation…"):
                    private = load_data(data_dir)
                    check_heldout_unseen(get_store(), private, load_data(held_dir, classes=private.classes))
                    v = load_model(victim.strip(), arch=arch.strip() or None, num_classes=private.num_classes,
                                   revision=victim_rev.strip() or None, input_size=int(input_size) or None)
                    spec = AuditSpec(victim=victim.strip(), foundation=foundation.strip(), data=data_dir,
                                     heldout=held_dir, victim_revision=victim_rev.strip() or None,
                                     foundation_revision=foundation_rev.strip() or None, arch=arch.strip() or None,
                                     input_size=int(input_size) or None)
                    # checked now, not when building: a mistyped foundation never becomes a saved audit
                    open_foundation(spec, v, private.num_classes)
                # model suspects carry over to a new victim; answers belong to the old query set and do not
                own = case.spec is not None and not is_demo(case.spec.victim)
                keep = [s for s in case.suspects if not s.answers] if own else []
                new = Case(spec=spec, suspects=keep)
                if case.spec is not None and case.audit is None and not case.verdicts and not is_demo(case.spec.victim):
                    new.id = case.id  # a correction of an audit never built: the same audit, not a new entry
                new.cards = {"victim": {**v.card(), "accuracy": None,
                                        **({"source": f"uploaded {victim_up.name}"} if victim_up is not None else {})}}
                set_case(new)
                st.success(f"Loaded {md_text(v.arch)} with {v.num_classes} classes and {len(private)} private images.")
                st.rerun()
        except Exception as e:  # noqa: BLE001 - shown to the user, inputs kept
            show_error(e, names=shown)

case = current_case()
if case.spec is None:
    st.info("Load the demo, or your own victim above, to add suspects.", icon=":material/info:")
    st.stop()

st.divider()
st.subheader(f"Suspects ({len(case.suspects)})" if case.suspects else "Suspects", anchor=False)
report = st.session_state.get("many_report")
if report is not None and report["case"] == (case.id, case.ran_at):  # until the audit runs again
    many_report(report["lines"])
if case.suspects:
    many = len(case.suspects) > 6
    with st.container(height=480 if many else "content", border=many):  # a long list scrolls inside its box
        for s in list(case.suspects):
            c1, c2, c3 = st.columns([4, 4, 1.3], vertical_alignment="center")
            truth = "a theft" if s.kind == "stolen" else "innocent"
            note = ""
            if s.kind:
                note = f"  \n:gray[demo ground truth: {truth}]"
            if s.name not in case.verdicts and case.audit is not None and s.name not in case.errors:
                note += "  \n:blue[not verified yet: build again on 2 · Shadow models]"
            if s.answers and case.audit is not None and s.query_set and s.query_set != case.audit.queries.fingerprint:
                note += ("  \n:orange[answers to an earlier query set: export the new one and query the suspect "
                         "again]")
            c1.markdown(f"**{md_text(s.name)}**" + note)
            c2.code(s.shown_source, language=None, wrap_lines=True)
            if c3.button("Remove", key=f"rm-{s.name}", icon=":material/delete:", disabled=busy):
                case.remove_suspect(s.name)
                st.rerun()
    if many:
        if st.session_state.get("confirm_remove_all"):
            st.warning(f"Remove all {len(case.suspects)} suspects from this audit?", icon=":material/warning:")
            c1, c2, _ = st.columns([2, 1, 3])
            if c1.button("Remove them all", type="primary", disabled=busy):
                for s in list(case.suspects):
                    case.remove_suspect(s.name)
                st.session_state.pop("confirm_remove_all", None)
                st.rerun()
            if c2.button("Keep them"):
                st.session_state.pop("confirm_remove_all", None)
                st.rerun()
        elif st.button("Remove all suspects…", icon=":material/delete_sweep:", disabled=busy):
            st.session_state.confirm_remove_all = True
            st.rerun()
else:
    st.caption("No suspects yet: add one model, black-box answers, or a whole list below.")

MANY = "Add many suspects"
if "suspect_tab_next" in st.session_state:  # after a batch: its tab stays open, with the lines it refused
    st.session_state.suspect_tab = st.session_state.pop("suspect_tab_next")
# keyed and tracked, so the open tab survives the reruns that add suspects above it
tab_model, tab_answers, tab_many = st.tabs(["Add a suspect model", "Add black-box answers", MANY],
                                           key="suspect_tab", on_change="rerun")
with tab_model:
    with st.form("suspect_form", clear_on_submit=False):
        st.markdown("A model source — `hf-hub:ORG/NAME`, `local-dir:/path/to/folder` (timm or transformers), a weights "
                    "file path on this server — **or upload** a `.safetensors` / `.pth` file (the victim's "
                    "architecture) or a zipped model folder (timm's `save_for_hf`, or a transformers checkpoint with "
                    "its `preprocessor_config.json`).")
        c1, c2, c3 = st.columns([3, 1, 2])
        src = c1.text_input("Suspect model",
                            placeholder="hf-hub:someone/suspicious-model  or  /path/suspect.safetensors")
        rev = c2.text_input("Revision", placeholder="main")
        name = c3.text_input("Name (optional)")
        model_up = st.file_uploader("…or upload the suspect's weights (.safetensors, .pth) or a zipped save_for_hf "
                                    "folder", key="model_upload", max_upload_size=MAX_ZIP_MB)
        add = st.form_submit_button("Check and add suspect", disabled=busy)
    if add:
        shown: dict[str, str] = {}
        try:
            upload = None
            with contextlib.ExitStack() as uploads:  # a refused upload leaves nothing in the store
                if model_up is not None:
                    if src.strip():
                        raise ForensicsError("give either a source or an upload, not both")
                    source, upload = model_upload(uploads, model_up, shown), model_up.name
                elif src.strip():
                    source = src.strip()
                else:
                    raise ForensicsError("give the suspect's source (hf-hub:ORG/NAME, local-dir:PATH or a weights "
                                         "file) or upload its weights")
                with st.spinner("Loading the suspect to check it…"):
                    add_model_suspect(case, source, name=name.strip() or None, revision=rev.strip() or None,
                                      upload=upload)
            st.session_state.pop("many_report", None)  # the other verdicts stay; the new suspect awaits a build
            st.rerun()
        except Exception as e:  # noqa: BLE001
            show_error(e, names=shown)
with tab_answers:
    st.markdown("For a suspect you can only query (an API): download the query set, send its images to the API in "
                "the order of `queries.csv`, and upload the answers as CSV (`query_index` plus one logit column per "
                "class, or a single `label` column) or `.npy`.")
    if case.audit is not None:
        if st.button("Prepare the query set (zip)", icon=":material/folder_zip:"):
            with st.spinner("Writing the query images…"):
                st.session_state.queries_zip = case.queries_zip()
        if "queries_zip" in st.session_state:
            st.download_button("Download the query set", st.session_state.queries_zip, file_name="queries.zip",
                               mime="application/zip", icon=":material/download:")
        st.caption(f"Answers are checked when you add them: {len(case.audit.queries)} rows (one per query), "
                   f"{case.audit.num_classes} logit columns or one label column.")
    else:
        st.caption("The query set is ready once the shadow models are built (2 · Shadow models). **Until then, answers "
                   "are checked for their format and class count only**; the number of rows is checked when the "
                   "audit runs. Answers always respond to one query set: export it first.")
    # file types are checked by the page (with a message that says what to do), not by the widget
    up = st.file_uploader("Suspect's answers (.csv or .npy)", key="answers_upload", max_upload_size=MAX_ANSWERS_MB)
    aname = st.text_input("Name of this suspect", key="answers_name")
    if st.button("Add these answers", disabled=up is None or busy):
        try:
            if up.size > MAX_ANSWERS_MB * 1024 ** 2:
                raise ForensicsError(f"the answers file is {up.size / 1e6:.0f} MB; the limit is {MAX_ANSWERS_MB} MB")
            add_answers_suspect(case, get_store(), up.getvalue(), up.name, name=aname.strip() or None)
            st.session_state.pop("many_report", None)
            st.rerun()
        except Exception as e:  # noqa: BLE001
            show_error(e)
with tab_many:
    st.markdown("**One source per line**, on this server: `hf-hub:ORG/NAME[@REV]`, `local-dir:/path/to/folder`, "
                "a weights file, or a black-box suspect's answers (`.csv` / `.npy`). Blank lines and `# comments` "
                "are skipped, a repeated line counts once (the same list serves `holmes-forensics scan "
                "--suspects`).")
    st.caption("Each line is checked as a suspect added alone and named after its repo, folder or file (to choose "
               "a name, add it alone). A refused line is reported with its reason and stays in the box to be fixed; "
               "the others are added.")
    if "many_sources_next" in st.session_state:  # what the last batch refused: set before the box is drawn
        st.session_state.many_sources = st.session_state.pop("many_sources_next")
    with st.form("many_form"):
        text = st.text_area("Suspect sources, one per line", key="many_sources", height=180,
                            placeholder="# a comment\nhf-hub:someone/suspicious-model\nhf-hub:someone/other-model@v2\n"
                                        "local-dir:/models/thief-a\n/models/thief-b.safetensors\n/answers/api.csv")
        list_up = st.file_uploader("…or upload a list (.txt, one source per line)",
                                   key=f"many_upload_{st.session_state.get('many_round', 0)}",
                                   max_upload_size=MAX_ANSWERS_MB)
        add_many_now = st.form_submit_button("Check and add these suspects", disabled=busy,
                                             icon=":material/playlist_add:")
    if add_many_now:
        try:
            sources = read_list(text, (list_up.name, list_up.getvalue()) if list_up is not None else None)
        except Exception as e:  # noqa: BLE001
            show_error(e)
        else:
            bar = st.progress(0.0, text=f"Checking {len(sources)} suspects…")

            def checking(i: int, n: int, source: str) -> None:
                bar.progress(i / n, text=f"Checking suspect {i + 1} of {n}: {source}")

            lines = add_many(case, get_store(), sources, on_line=checking)
            st.session_state.many_report = {"case": (case.id, case.ran_at), "lines": lines}
            st.session_state.many_sources_next = "\n".join(o.source for o in lines if o.status == "refused")
            st.session_state.many_round = st.session_state.get("many_round", 0) + 1  # empties the list upload
            st.session_state.suspect_tab_next = MANY
            st.rerun()

if case.cards:
    st.divider()
    st.subheader("Model cards", anchor=False)
    suspect_names = {s.name for s in case.suspects}
    audit_cards = [(t, c) for t, c in case.cards.items() if t not in suspect_names]
    suspect_cards = [(t, c) for t, c in case.cards.items() if t in suspect_names]

    victim_fp = (case.cards.get("victim") or {}).get("fingerprint")

    def card_grid(cards) -> None:
        cols = st.columns(3)
        for i, (title, card) in enumerate(cards):
            with cols[i % 3]:
                model_card(title, card, victim_fingerprint=None if title == "victim" else victim_fp)

    if len(suspect_cards) > 6:  # many suspects: their cards fold away below the audit's own
        card_grid(audit_cards)
        with st.expander(f"The suspects' model cards ({len(suspect_cards)})"):
            card_grid(suspect_cards)
    else:
        card_grid(audit_cards + suspect_cards)
