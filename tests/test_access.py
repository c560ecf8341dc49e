"""A shared server (issue 19): a data root every server path must lie under (listings included), users who sign in
with an operator-set password, and audits visible to their owner only.  On your own machine nothing changes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import shown
from PIL import Image

from forensics.errors import ConfigError
from forensics.runtime import access

PASSWORD = "correct horse battery staple"


@pytest.fixture
def root(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / "set" / c).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 40 if c == "a" else 200, np.uint8)).save(data / "set" / c / "x.png")
    (tmp_path / "outside" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "outside" / "a" / "secret.png")
    monkeypatch.setenv("FORENSICS_DATA_ROOT", str(data))
    return data


def test_paths_outside_the_data_root_are_refused_links_and_listings_included(root, tmp_path):
    from forensics.audit.sources import load_data, parse_model_source
    from forensics.report.record import read_record

    assert len(load_data(str(root / "set"))) == 2  # inside: read as before
    for outside in ("/etc", str(tmp_path / "outside"), str(root / ".." / "outside")):
        with pytest.raises(access.AccessError, match="outside the folder this server may read"):
            load_data(outside)
    os.symlink(tmp_path / "outside", root / "link")  # a link inside the root that points out of it
    with pytest.raises(access.AccessError, match="data source"):
        load_data(str(root / "link"))
    # a listing inside the root that names a file outside it
    (root / "list.csv").write_text(f"image,label\n{root / 'set' / 'a' / 'x.png'},a\n"
                                   f"{tmp_path / 'outside' / 'a' / 'secret.png'},b\n")
    with pytest.raises(access.AccessError, match="image file a listing names"):
        load_data(str(root / "list.csv"))
    with pytest.raises(access.AccessError, match="model source"):
        parse_model_source("/etc/passwd.safetensors")
    with pytest.raises(access.AccessError, match="model folder"):
        parse_model_source(f"local-dir:{tmp_path / 'outside'}")
    with pytest.raises(access.AccessError, match="audit record"):
        read_record(Path("/etc/hostname"))


def test_without_settings_any_path_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("FORENSICS_DATA_ROOT", raising=False)
    monkeypatch.delenv("FORENSICS_USERS_FILE", raising=False)
    assert access.allowed_path("/etc/hostname") == Path("/etc/hostname")
    assert not access.shared()


def test_users_sign_in_with_the_operators_password(tmp_path, monkeypatch):
    import subprocess
    import sys

    users = tmp_path / "users"
    out = subprocess.run([sys.executable, "-m", "forensics", "add-user", "alice", "--users-file", str(users)],
                         input=PASSWORD + "\n", capture_output=True, text=True, check=True)
    assert "alice can sign in" in out.stdout
    access.add_user(users, "bob", PASSWORD + "!")
    assert oct(users.stat().st_mode & 0o777) == "0o600" and PASSWORD not in users.read_text()
    monkeypatch.setenv("FORENSICS_USERS_FILE", str(users))
    assert access.shared()
    assert access.check_password("alice", PASSWORD) and access.check_password("bob", PASSWORD + "!")
    assert not access.check_password("alice", PASSWORD + "!") and not access.check_password("carol", PASSWORD)
    assert not access.check_password("alice", "")
    with pytest.raises(ConfigError, match="at least 12 characters"):
        access.add_user(users, "carol", "short")
    with pytest.raises(ConfigError, match="not a user name"):
        access.add_user(users, "../carol", PASSWORD)
    # shared without a data root: no server path at all
    with pytest.raises(access.AccessError, match="reads no server paths"):
        access.allowed_path(tmp_path)


def test_audits_are_visible_to_their_owner_only(tmp_path):
    from forensics.cases import casefile
    from forensics.cases.case import Case
    from forensics.demo import demo_spec
    from forensics.runtime.store import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    mine, theirs = Case(spec=demo_spec(0, quick=True), owner="alice"), Case(spec=demo_spec(1, quick=True), owner="bob")
    for c in (mine, theirs):
        casefile.save_case(store, c)
    assert [r.id for r in casefile.recent_cases(store, owner="alice")] == [mine.id]
    assert {r.id for r in casefile.recent_cases(store)} == {mine.id, theirs.id}  # one user: every audit
    assert casefile.load_record(store, mine.id, owner="alice")["owner"] == "alice"
    with pytest.raises(ConfigError) as other:
        casefile.load_record(store, theirs.id, owner="alice")
    with pytest.raises(ConfigError) as missing:
        casefile.load_record(store, "0123456789ab", owner="alice")
    assert str(other.value).replace(theirs.id, "ID") == str(missing.value).replace("0123456789ab", "ID")
    assert not casefile.forget_case(store, theirs.id, owner="alice") and casefile.load_record(store, theirs.id)
    # a record names an owner of any shape: only a user name is kept
    rec = casefile.case_record(mine)
    rec["owner"] = "<img src=x>"
    assert casefile.case_from_record(rec).owner is None


@pytest.mark.usefixtures("navigation_like_the_server")
def test_the_shared_dashboard_asks_to_sign_in_and_refuses_server_paths(tmp_path, monkeypatch, root):
    from streamlit.testing.v1 import AppTest

    users = tmp_path / "users"
    access.add_user(users, "alice", PASSWORD)
    monkeypatch.setenv("FORENSICS_USERS_FILE", str(users))
    monkeypatch.setenv("FORENSICS_STORE", str(tmp_path / "store"))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"] or "Sign in" in [b.label for b in at.button]
    assert not any("Load the demo" in b.label for b in at.button)  # nothing of the app before signing in
    at.text_input(key="sign_in_name").set_value("alice")
    at.text_input(key="sign_in_password").set_value("wrong password!")
    at.button[0].click().run()
    assert any("Wrong name or password" in shown(e) for e in at.error)
    at.text_input(key="sign_in_name").set_value("alice")
    at.text_input(key="sign_in_password").set_value(PASSWORD)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception and any("Load the demo" in b.label for b in at.button)
    at.text_input(key="record_path").set_value("/etc/hostname").run()
    next(b for b in at.button if b.label == "Reopen this record").click().run()
    assert any("outside the folder this server may read" in shown(e) for e in at.error), [shown(e) for e in at.error]
    assert json.dumps([shown(e) for e in at.error]).count("/etc/hostname") == 1  # named, never its content


def test_an_uploaded_listing_may_name_only_files_in_its_own_zip(tmp_path, monkeypatch):
    """A zip's metadata.csv may list /etc/... or ../ paths: read from an upload (in any mode, one user too), the
    listing's files must lie inside that upload."""
    from forensics.audit.sources import load_data

    monkeypatch.delenv("FORENSICS_DATA_ROOT", raising=False)
    monkeypatch.setenv("FORENSICS_STORE", str(tmp_path / "store"))
    up = tmp_path / "store" / "uploads" / "data" / ("ab" * 32)
    (up / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(up / "a" / "x.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "secret.png")
    (up / "metadata.csv").write_text("file_name,label\na/x.png,a\na/x.png,b\n")
    assert len(load_data(str(up))) == 2
    for bad in (str(tmp_path / "secret.png"), "../../../../secret.png"):
        (up / "metadata.csv").write_text(f"file_name,label\na/x.png,a\n{bad},b\n")
        with pytest.raises(access.AccessError, match="outside the upload"):
            load_data(str(up))
    # the same listing outside an upload, on your own machine: your own files, read as before
    own = tmp_path / "own"
    (own / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(own / "a" / "x.png")
    (own / "metadata.csv").write_text(f"file_name,label\na/x.png,a\n{tmp_path / 'secret.png'},b\n")
    assert len(load_data(str(own))) == 2


def test_a_timm_wrapper_config_without_architecture_is_refused_before_timm_reads_it(tmp_path):
    """transformers' timm_wrapper would pass the config's pretrained_cfg (a checkpoint_path of its choosing) to timm;
    its error messages then tell which server files exist."""
    from forensics.errors import ModelSourceError
    from forensics.models.timm_models import load_local_dir

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "timm_wrapper", "num_classes": 3,
                                                      "pretrained_cfg": {"file": "/etc/shadow"}}))
    (tmp_path / "preprocessor_config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelSourceError, match=r"timm_wrapper config\.json without 'architecture'") as e:
        load_local_dir(tmp_path)
    assert "shadow" not in str(e.value)


def test_records_name_uploads_relative_to_the_store_never_by_the_servers_path(tmp_path):
    """An uploaded answers file lives in the store; a saved case (and a downloaded record) names it store:..., not
    by the server's absolute path (which tells where the store is, and whose home folder it is in)."""
    from forensics.cases import casefile
    from forensics.cases.case import Case, Suspect
    from forensics.cases.uploads import store_answers
    from forensics.demo import demo_spec
    from forensics.report.record import store_names, store_paths
    from forensics.runtime.store import ArtifactStore

    store = ArtifactStore(tmp_path / "home" / "alice" / "store")
    kept = store_answers(store, b"0,1\n1,0\n", "answers.csv")
    case = Case(spec=demo_spec(0, quick=True))
    case.add_suspect(Suspect("theirs", "answers:answers.csv", answers=kept))
    text = casefile.save_case(store, case).read_text()
    assert str(tmp_path) not in text and '"answers": "store:uploads/' in text
    rec = casefile.load_record(store, case.id)
    assert casefile.case_from_record(rec).suspects[0].answers == kept  # read back as a path in this store
    # a hostile store: name cannot climb out of the store
    assert store_paths({"a": "store:../../etc/passwd", "b": "local-dir:store:x"}, store.root) == {
        "a": "store:../../etc/passwd", "b": f"local-dir:{store.root / 'x'}"}
    assert store_names({"v": f"local-dir:{store.root}/uploads/model/x"}, store.root) == {
        "v": "local-dir:store:uploads/model/x"}


def test_on_a_shared_server_records_name_data_relative_to_the_data_root(root, tmp_path, monkeypatch):
    """A path a user typed under the data root is saved ``data-root:...``: the record says neither where the server
    keeps the data nor whose home folder it is in, and reads back to the same path on this server."""
    from forensics.audit.spec import AuditSpec
    from forensics.cases import casefile
    from forensics.cases.case import Case
    from forensics.runtime.store import ArtifactStore

    store = ArtifactStore(tmp_path / "store")
    spec = AuditSpec(victim=f"local-dir:{root}/models/victim", foundation="demo:foundation", data=str(root / "set"),
                     heldout=f"{root / 'held.csv'}")
    case = Case(spec=spec)
    text = casefile.save_case(store, case).read_text()
    assert str(root) not in text and str(tmp_path) not in text
    saved = json.loads(text)["spec"]
    assert saved["data"] == "data-root:set" and saved["victim"] == "local-dir:data-root:models/victim"
    back = casefile.case_from_record(casefile.load_record(store, case.id)).spec
    assert (back.data, back.victim, back.heldout) == (spec.data, spec.victim, spec.heldout)


def test_a_shared_dashboard_asks_only_public_endpoints(tmp_path, monkeypatch):
    """An API audit on a shared server must not make the server ask itself, its cloud's metadata address or its
    private network; the operator may allow it; on your own machine any endpoint is yours to ask."""
    check_endpoint = access.check_endpoint
    check_endpoint("http://127.0.0.1:8080/x")  # one user, own machine: allowed
    users = tmp_path / "users"
    access.add_user(users, "alice", "a long enough password")
    monkeypatch.setenv("FORENSICS_USERS_FILE", str(users))
    for url in ("http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.5/api",
                "http://[::1]:9000/", "http://localhost/x"):
        with pytest.raises(access.AccessError, match="public endpoints"):
            check_endpoint(url)
    check_endpoint("http://8.8.8.8/classify")  # a public address (no request is made)
    # nor may a user name a server variable as the API key (it would send the server's secret to their endpoint)
    with pytest.raises(access.AccessError, match="type the API key"):
        access.check_key_variable("AWS_SECRET_ACCESS_KEY")
    access.check_key_variable(None)
    monkeypatch.setenv("FORENSICS_API_PRIVATE", "1")
    check_endpoint("http://10.0.0.5/api")


def test_on_a_shared_server_messages_never_quote_a_files_content(root, tmp_path, monkeypatch):
    """Naming a file of the data root must not become a way to read it: its column names, labels and listed paths
    stay out of the messages on a shared server (and are quoted on your own machine, where they help)."""
    from forensics.audit.sources import load_data
    from forensics.errors import DataSourceError

    (root / "cols.csv").write_text("secret_column,other_secret\nx,y\n")
    (root / "labels.csv").write_text(f"image,label\n{root / 'set' / 'a' / 'x.png'},the-secret-label\n")
    (root / "paths.csv").write_text(f"image,label\n{root / 'set' / 'the-secret-file.png'},a\n")
    said = {}
    for name in ("cols.csv", "labels.csv", "paths.csv"):
        with pytest.raises(DataSourceError) as e:
            load_data(str(root / name))
        said[name] = str(e.value)
    assert "secret_column" in said["cols.csv"] and "the-secret-file" in said["paths.csv"]  # own machine: quoted
    users = tmp_path / "users"
    access.add_user(users, "alice", "a long enough password")
    monkeypatch.setenv("FORENSICS_USERS_FILE", str(users))
    for name in ("cols.csv", "labels.csv", "paths.csv"):
        with pytest.raises(DataSourceError) as e:
            load_data(str(root / name))
        assert "secret" not in str(e.value) and "withheld" in str(e.value), str(e.value)
