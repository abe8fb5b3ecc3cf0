"""digitalocean_droplet and digitalocean_droplet_info through real ansible-playbook runs."""
from __future__ import annotations

import time

TOKEN = {"DIGITALOCEAN_TOKEN": "test-token"}


def droplet(server, **kw):
    args = {"base_url": server.url, "timeout": 20, "poll_interval": 0.1, "wait_timeout": 30}
    args.update(kw)
    return {"name": "droplet", "sciops.platform.digitalocean_droplet": args}


WEB = dict(name="web-1", size="s-1vcpu-1gb", region="fra1", image="debian-12-x64", tags=["sciops", "env-test"],
           ssh_keys=["289794", "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"], monitoring=True, backups=False,
           vpc_uuid="5a4981aa-9653-4bd1-bef5-d6bff52042e4", user_data="#cloud-config\n")


def test_create_wait_and_idempotent_noop(digitalocean, playbook):
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True, r
    assert r.last["droplet"]["status"] == "active"
    assert r.last["public_ipv4"].startswith("203.0.") and r.last["private_ipv4"].startswith("10.110.")
    assert r.last["diff"]["before"] == {} and r.last["diff"]["after"]["name"] == "web-1"
    post = digitalocean.calls("POST")
    assert len(post) == 1
    assert post[0].body["ssh_keys"] == [289794, "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"]
    assert post[0].body["monitoring"] is True and post[0].body["user_data"] == "#cloud-config\n"
    assert digitalocean.calls("GET", "^/v2/droplets$")[0].query == {"name": "web-1", "per_page": "200"}

    digitalocean.reset_log()
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is False, r
    assert len(digitalocean.calls()) == 1, "an idempotent no-op costs exactly one filtered list call"
    assert r.last["api_calls"] == 1
    assert len(digitalocean.droplets) == 1


def test_check_mode_creates_nothing(digitalocean, playbook):
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN, check=True)
    assert r.rc == 0 and r.last["changed"] is True, r
    assert r.last["diff"]["after"]["size"] == "s-1vcpu-1gb"
    assert digitalocean.writes() == [] and len(digitalocean.calls()) == 1 and digitalocean.droplets == {}


def test_lost_create_response_leaves_one_droplet(digitalocean, playbook):
    digitalocean.inject("lost", method="POST")
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True, r
    assert r.last["recovered"] is True
    assert len(digitalocean.droplets) == 1
    assert len(digitalocean.calls("POST")) == 1
    assert r.last["droplet"]["status"] == "active"


def test_create_retried_after_server_error(digitalocean, playbook):
    digitalocean.inject("500", method="POST")
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True and r.last["recovered"] is False, r
    assert len(digitalocean.calls("POST")) == 2 and len(digitalocean.droplets) == 1


def test_429_waits_then_succeeds(digitalocean, playbook):
    digitalocean.add_droplet("web-1")
    digitalocean.inject("429", method="GET", wait=1)
    start = time.monotonic()
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is False, r
    assert time.monotonic() - start >= 1
    assert [c.fault for c in digitalocean.calls()] == ["429", None]


def test_absent_by_name_and_by_tag(digitalocean, playbook):
    for i in range(3):
        digitalocean.add_droplet("test-%d" % i, tags=["env-test"])
    digitalocean.add_droplet("keep", tags=["env-prod"])
    r = playbook([droplet(digitalocean, name="test-0", state="absent")], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True, r
    assert [c.method for c in digitalocean.calls()] == ["GET", "DELETE"]
    digitalocean.reset_log()
    r = playbook([droplet(digitalocean, tag="env-test", state="absent")], env=TOKEN, check=True)
    assert r.last["changed"] is True and digitalocean.writes() == [] and len(r.last["removed"]) == 2, r
    r = playbook([droplet(digitalocean, tag="env-test", state="absent")], env=TOKEN)
    assert r.last["changed"] is True, r
    assert sorted(d["name"] for d in digitalocean.droplets.values()) == ["keep"]
    assert digitalocean.calls("DELETE")[0].query == {"tag_name": "env-test"}
    digitalocean.reset_log()
    r = playbook([droplet(digitalocean, tag="env-test", state="absent"), droplet(digitalocean, name="test-0", state="absent")], env=TOKEN)
    assert [t["changed"] for t in r.results] == [False, False]
    assert len(digitalocean.calls()) == 2 and digitalocean.writes() == []


def test_info_pages_1000_droplets_in_5_calls(digitalocean, playbook):
    for i in range(1000):
        digitalocean.add_droplet("node-%04d" % i, tags=["big"] if i < 250 else [])
    r = playbook([
        {"name": "all", "sciops.platform.digitalocean_droplet_info": {"base_url": digitalocean.url}},
    ], env=TOKEN, check=True)
    assert r.rc == 0, r
    assert len(r.last["droplets"]) == 1000 and len({d["id"] for d in r.last["droplets"]}) == 1000
    assert len(digitalocean.calls()) == 5 and r.last["api_calls"] == 5
    digitalocean.reset_log()
    r = playbook([
        {"name": "by tag", "sciops.platform.digitalocean_droplet_info": {"base_url": digitalocean.url, "tag": "big"}},
        {"name": "by name", "sciops.platform.digitalocean_droplet_info": {"base_url": digitalocean.url, "name": "node-0007"}},
    ], env=TOKEN)
    assert [len(t["droplets"]) for t in r.results] == [250, 1], r
    assert len(digitalocean.calls()) == 3  # 250 tagged = 2 pages, by name = 1


def test_invalid_input_and_missing_token_fail_before_any_call(digitalocean, playbook):
    r = playbook([droplet(digitalocean, **WEB)])
    assert r.rc != 0 and "DigitalOcean token missing" in r.last["msg"], r
    r = playbook([droplet(digitalocean, name="web-1")], env=TOKEN)
    assert r.rc != 0 and "missing: size, region, image" in r.last["msg"], r
    r = playbook([droplet(digitalocean, state="absent")], env=TOKEN)
    assert r.rc != 0 and "one of the following is required: name, tag" in r.last["msg"], r
    assert digitalocean.calls() == []


def test_wrong_token_message_hides_token(digitalocean, playbook):
    r = playbook([droplet(digitalocean, token="dop_v1_not_the_right_one", **WEB)], extra_args=["-vvv"])
    assert r.rc != 0
    assert r.last["msg"].startswith("DigitalOcean API error: HTTP 401 unauthorized: Unable to authenticate you"), r
    assert "dop_v1_not_the_right_one" not in r.stdout + r.stderr


def test_slow_response_within_and_beyond_timeout(digitalocean, playbook):
    digitalocean.inject("slow", method="GET", wait=1)
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True, r
    digitalocean.inject("slow", method="GET", path="^/v2/droplets$", wait=4, times=5)
    r = playbook([droplet(digitalocean, timeout=2, **WEB)], env=TOKEN)
    assert r.rc != 0 and "timeout of 2s" in r.last["msg"], r


def test_duplicate_names_refused(digitalocean, playbook):
    digitalocean.add_droplet("web-1")
    digitalocean.add_droplet("web-1")
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc != 0 and "2 droplets are named web-1" in r.last["msg"], r
    assert digitalocean.writes() == []


def test_existing_droplet_that_is_off_is_returned_at_once(digitalocean, playbook):
    digitalocean.add_droplet("web-1", status="off")
    r = playbook([droplet(digitalocean, **WEB)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is False and r.last["droplet"]["status"] == "off", r
    assert len(digitalocean.calls()) == 1


# Values the API refuses by its published contract (droplet_single_create: name pattern and length;
# tag names: the tags schema's pattern and length; user_data: "may not exceed 64 KiB").
INVALID = [
    ("name", dict(name="bad name!")),
    ("name", dict(name="web-")),
    ("name", dict(name="a" * 256)),
    ("tags", dict(tags=["sciops", "bad tag"])),
    ("tags", dict(tags=["t" * 256])),
    ("tag", dict(tag="env/test")),
    ("user_data", dict(user_data="x" * 65537)),
]


def test_invalid_values_refused_before_any_call_also_in_check_mode(digitalocean, playbook):
    tasks = [dict(droplet(digitalocean, **dict(WEB, **override)), ignore_errors=True) for option, override in INVALID]
    for check in (False, True):
        r = playbook(tasks, env=TOKEN, check=check)
        assert len(r.results) == len(INVALID), r
        for (option, override), result in zip(INVALID, r.results):
            assert result.get("failed") is True and result.get("changed") is False, (option, override, check, result)
            assert result["msg"].startswith("invalid value for option %s:" % option), (option, check, result["msg"])
            assert result["api_calls"] == 0
        assert digitalocean.calls() == [], "no request at all for a value the API would refuse (check=%s)" % check
    assert digitalocean.droplets == {}


def test_valid_edge_values_are_accepted(digitalocean, playbook):
    args = dict(WEB)
    args.update(name="a" * 255, tags=["env:prod", "group_db-1"], tag="t" * 255, user_data="x" * 65536)
    r = playbook([droplet(digitalocean, **args)], env=TOKEN)
    assert r.rc == 0 and r.last["changed"] is True, r


def test_option_constraints_are_the_specs(digitalocean):
    from ansible_collections.sciops.platform.plugins.module_utils import digitalocean as do
    schemas = digitalocean.spec.doc["components"]["schemas"]
    name = schemas["droplet_single_create"]["allOf"][0]["properties"]["name"]
    assert (do.NAME_PATTERN, do.NAME_MAX_LENGTH) == (name["pattern"], name["maxLength"])
    multi = schemas["droplet_multi_create"]["allOf"][0]["properties"]["names"]["items"]
    assert (do.NAME_PATTERN, do.NAME_MAX_LENGTH) == (multi["pattern"], multi["maxLength"])
    tag = schemas["tags"]["properties"]["name"]
    assert (do.TAG_PATTERN, do.TAG_MAX_LENGTH) == (tag["pattern"], tag["maxLength"])
    user_data = schemas["droplet_create"]["properties"]["user_data"]["description"]
    assert "may not exceed 64 KiB" in user_data and do.USER_DATA_MAX_BYTES == 64 * 1024


def test_wait_timeout_after_create_reports_the_new_droplet(digitalocean, playbook):
    digitalocean.activate_after = 10 ** 6  # stays "new"
    r = playbook([droplet(digitalocean, **dict(WEB, wait_timeout=1, poll_interval=0.2))], env=TOKEN)
    assert r.rc != 0 and r.last.get("failed") is True, r
    assert r.last["changed"] is True, "the droplet exists (and costs money): the run changed something"
    (droplet_id,) = digitalocean.droplets
    assert r.last["droplet"]["id"] == droplet_id and r.last["droplet"]["status"] == "new", r.last
    assert r.last["droplet"]["name"] == "web-1"
    assert "still new after 1s" in r.last["msg"], r.last["msg"]
    assert len(digitalocean.calls("POST")) == 1


def test_error_while_waiting_after_create_reports_the_new_droplet(digitalocean, playbook):
    digitalocean.activate_after = 10 ** 6
    digitalocean.inject("500", method="GET", path=r"^/v2/droplets/\d+$", times=1000)
    r = playbook([droplet(digitalocean, **dict(WEB, timeout=2))], env=TOKEN)
    assert r.rc != 0 and r.last["changed"] is True, r
    (droplet_id,) = digitalocean.droplets
    assert r.last["droplet"]["id"] == droplet_id and r.last["droplet"]["status"] == "new", r.last
    assert "HTTP 500" in r.last["msg"]
