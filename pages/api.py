"""Step 7: audit a suspect behind a paid API with the sequential test - the fewest queries the evidence needs."""
from __future__ import annotations

import json
import re
from functools import partial

import streamlit as st

from dashboard.nav import go, routed
from dashboard.state import current_case, get_store, side_job, start_side_job
from dashboard.widgets import LIVE_EVERY, live_job, md_text, need_audit, show_error
from forensics.api.audit import API_JOURNAL, STOPS, ApiProgress, api_audit, journal_source
from forensics.api.client import Budget, Endpoint
from forensics.audit.verdict import format_p
from forensics.cases.case import Suspect
from forensics.errors import ConfigError
from forensics.report.verdict_figures import sequential_figure
from forensics.runtime.access import allowed_path, check_endpoint, check_key_variable

routed()
st.title("API audit")
st.markdown("**A suspect behind a paid API?** This page sends it your audit's query images and reads its answers, "
            "pair by pair: one of your private training images and one unseen image of the same difficulty, the "
            "hardest first. It stops as soon as the evidence decides at alpha, or when your budget is spent. The "
            "p-value stays valid however early it stops (a sequential test by betting), and every answer is kept in "
            "a journal: press **Start** again after an error and no answered query is paid for twice.")
if not need_audit("API audits"):
    st.stop()
case = current_case()
audit = case.audit
alpha = audit.config.alpha
job = side_job("api")
busy = job is not None and job.running

with st.form("api"):
    c1, c2 = st.columns([3, 2])
    url = c1.text_input("Endpoint URL", placeholder="https://api.example.com/v1/classify",
                        help="the suspect's HTTP endpoint; only this URL is requested (redirects are not followed)")
    name = c2.text_input("Suspect name", placeholder="their API", help="what the verdict and the report call it")
    c1, c2, c3 = st.columns(3)
    style = c1.selectbox("API style", ["json", "hf"], format_func=lambda s: {
        "json": "JSON request (set below)", "hf": "Hugging Face Inference Endpoint"}[s])
    fmt = c2.selectbox("Answers are", ["auto", "logits", "probabilities", "top-k", "label"],
                       help="auto: detected from each answer. top-k: a list like [{\"label\": ..., \"score\": ...}]; "
                            "label names are mapped to your model's classes")
    response_path = c3.text_input("Answer's place in the JSON", placeholder="e.g. predictions[0]",
                                  help="dots and [i] indexes; empty: the whole answer")
    with st.expander("Request details (JSON style), key and pace"):
        c1, c2 = st.columns(2)
        sent_as = {"base64": "base64 in a JSON body", "multipart": "a multipart file field",
                   "bytes": "the PNG bytes as the body"}
        image_as = c1.selectbox("Image sent as", list(sent_as), format_func=sent_as.get)
        body = c2.text_input("JSON body template", '{"image": "{image_base64}"}',
                             help='"{image_base64}" is replaced by the image')
        c1, c2 = st.columns(2)
        key_env = c1.text_input("API key: environment variable", help="the server's environment variable that holds "
                                "the key (never written to the record or the report); on a shared server, type the "
                                "key instead")
        key_typed = c2.text_input("or the key itself", type="password", help="kept in this server's memory for this "
                                  "audit only; never written to the journal, the record or the report")
        c1, c2, c3 = st.columns(3)
        concurrency = c1.number_input("Requests at once", 1, 32, 4)
        rate = c2.number_input("Requests per second at most (0: no limit)", 0.0, 1000.0, 0.0)
        timeout = c3.number_input("Seconds per request", 1.0, 600.0, 30.0)
    c1, c2, c3 = st.columns(3)
    max_queries = c1.number_input("Budget: queries at most", 2, 100_000, 600, step=100,
                                  help="the audit stops before paying for more (it usually decides far earlier)")
    price = c2.number_input("Price per query", 0.0, 1000.0, 0.0, format="%.4f")
    max_cost = c3.number_input("Budget: cost at most (0: no limit)", 0.0, 1e9, 0.0)
    start = st.form_submit_button("Start the API audit", type="primary", disabled=busy, icon=":material/send:")


def journal_for(case_id: str, suspect: str):
    slug = re.sub(r"[^A-Za-z0-9]+", "-", suspect).strip("-")[:40] or "suspect"
    folder = get_store().root / "api"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{case_id}-{slug}.jsonl"


if start and not busy:
    try:
        if not url.strip():
            raise ConfigError("give the suspect's endpoint URL")
        suspect = name.strip() or (url.split("/")[2] if "//" in url else "")
        if not suspect:
            raise ConfigError("give the suspect a name")
        if any(s.name == suspect for s in case.suspects if not s.source.startswith(API_JOURNAL)):
            raise ConfigError(f"a suspect named {suspect!r} is already in this audit; pick another name")
        try:
            template = json.loads(body) if body.strip() else {"image": "{image_base64}"}
        except ValueError as e:
            raise ConfigError(f"the JSON body template is not JSON ({e})") from e
        endpoint = Endpoint(url.strip(), style=style, fmt=fmt, response_path=response_path.strip() or None,
                            image_as=image_as, body_template=template, api_key_env=key_env.strip() or None,
                            concurrency=int(concurrency), rate_per_s=rate or None, timeout_s=float(timeout),
                            price_per_query=float(price))
        check_endpoint(endpoint.url)  # a shared server asks only public addresses
        check_key_variable(endpoint.api_key_env)  # ... and reads no server variable for a user
        journal = journal_for(case.id, suspect)
        allowed_path(str(journal), "API journal")
        run = partial(api_audit, name=suspect, budget=Budget(int(max_queries), float(max_cost) or None),
                      api_key=key_typed or None)  # the key stays in this job's memory only
        job = start_side_job("api", suspect, run, audit, endpoint, journal)
        busy = True
    except Exception as e:  # noqa: BLE001
        show_error(e)


def latest(j) -> ApiProgress | None:
    return next((e for e in reversed(j.snapshot()) if isinstance(e, ApiProgress)), None)


def view(state: ApiProgress | None, title: str, budget: int | None = None) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("queries read", 0 if state is None else state.queries)
    c2.metric("queries paid", 0 if state is None else state.paid)
    c3.metric("anytime-valid p-value", "-" if state is None else format_p(state.p_value))
    if state is not None and state.trace:
        st.plotly_chart(sequential_figure(state.trace, alpha, name=title, decision=state.decision, budget=budget),
                        width="stretch")


@st.fragment(run_every=LIVE_EVERY)
def live(job_id: str) -> None:
    j = live_job(job_id)
    if j is not None:
        st.markdown(f"**Asking {md_text(j.name)}**: running for {j.seconds:.0f} s")
        view(latest(j), "the suspect")


if busy and job is not None:
    live(job.id)
    st.stop()
if job is None:
    st.info("Give the suspect's endpoint and press **Start the API audit**. Try it on the demo with any endpoint "
            "that classifies images into your model's classes.", icon=":material/info:")
    st.stop()
if job.status == "failed":
    st.error(f"The API audit stopped: {md_text(job.error)}. Every answer received is kept in its journal: press "
             "**Start** again (same name) to go on without paying twice.", icon=":material/error:")
    view(latest(job), "the suspect")
    st.stop()

result = job.result
v = result.verdict
if st.session_state.get("api_kept") != job.id:  # the verdict goes with the case: 4 · Verdict and the report read it
    journal = v.evidence["sequential"].get("journal")
    if not any(s.name == v.suspect for s in case.suspects):
        case.add_suspect(Suspect(v.suspect, journal_source(journal), answers=journal))
    case.verdicts[v.suspect] = v
    case.cards[v.suspect] = {"source": v.evidence["sequential"]["endpoint"]["url"],
                             "answers": f"API answers ({result.asked} queries read, {result.paid} paid)",
                             "label_only": result.label_only}
    st.session_state.api_kept = job.id
    st.rerun()  # once: the sidebar, drawn before this page, counts the new suspect too
(st.error if v.stolen else st.success)(
    f"**{md_text(v.suspect)}**: {'evidence of derivation' if v.stolen else 'no evidence of derivation'} "
    f"(anytime-valid p = {format_p(v.p_value)}) after {result.asked} queries ({result.paid} paid). "
    f"{md_text(STOPS[result.stopped]).capitalize()}.", icon=":material/gavel:")
view(latest(job), v.suspect)
st.caption("No evidence is not a proof of innocence: a thief who changed the model a lot can weaken the signal "
           "(see 6 · Stress test for what this audit catches).")
if st.button("See it with the other suspects on 4 · Verdict", icon=":material/gavel:"):
    st.session_state.verdict_protocol = "sequential"  # the page opens on the protocol that decided it
    go("verdict")
