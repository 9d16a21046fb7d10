"""A fixed corpus of hostile command lines: each must end with exit code 2 and one line on
stderr, before anything trains (see ``test_hostile_inputs.py``).

It holds the cases of an adversarial probe of the command line (bad numbers, paths, stores,
suites, names and ids) crossed with every command that reads them.
"""

from __future__ import annotations

from pathlib import Path

TOY = ["toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--metrics", "",
       "--steps", "1", "--batch-size", "2"]

BAD_INTS = ["-1", "-99999999999", "18446744073709551616", "99999999999999999999999999",
            "9223372036854775808", "1e3", "0x10", "", " ", "nan", "1.5", "--1"]
RANGED = {"--seed": ["-1", "-99999999999", "18446744073709551616", "9223372036854775808"],
          "--steps": ["-1", "1000000001", "99999999999999999999999999"],
          "--batch-size": ["0", "-5", "100001", "1000000000"],
          "--eval-every": ["0", "-1", "10000000000"],
          "--checkpoint-every": ["0", "-3", "10000000000"]}
DEVICES = ["cpu:1", "cpu:-1", "quantum", "", "CPU", "cuda:x", "cuda:-1", "mps:3", "tpu",
           "cuda:99999"]
LONG = "n" * 300
HUGE = "n" * 5000
NAMES = ["", "nosuch", "../../etc/passwd", HUGE, "infogan\t", "Infogan", "toy_autoencoder "]
RUN_IDS = ["", "abc", "../x", "x" * 65, "0" * 32, "a b", "%s", "\u00e9" * 10, HUGE]
SETS = ["x", "=", "lr=", "latents=-1", "latents=1e9", "latents=99999999999999999999",
        "lr=fast", "nosuch=1", "latents=2,3", "=1", "lr=1=2"]
METRICS = ["nosuch", "mig,nosuch", HUGE, "mig,,nosuch", "../mig"]
PARAMS = ["x", "=1", "mig", "mig.=1", ".x=1", "nosuch.a=1", "mig.nosuch=1", "mig.num_train=x",
          "mig.num_train=-1", "mig.num_train=99999999999999999999999"]
URIS = ["sqlite:///", "sqlite://", "sqlite:////proc/x.db", f"sqlite:////tmp/{LONG}.db",
        "http://[::1", "http://127.0.0.1:abc", "ftp://x/y", "mlflow-artifacts://x",
        "\N{GRINNING FACE}://x", "file:///some/folder", " ", "databricks", HUGE,
        "https://", "mysql+nosuchdriver://u@h/db", "sqlite:///\udcff.db", "http://127.0.0.1:9",
        "postgresql:///db"]


def _suite_files(folder: Path) -> list[str]:
    """Bad suite files written into ``folder``; returns their paths."""
    laughs = ['a0: &a0 "lol"'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]"
                                   for i in range(1, 10)]
    texts = {
        "empty.yaml": "",
        "list.yaml": "- 1\n- 2\n",
        "noruns.yaml": "name: x\n",
        "badyaml.yaml": "runs: [\n",
        "device.yaml": "device: quantum\nruns: [{model: toy_autoencoder}]\n",
        "emptygrid.yaml": "runs: [{model: toy_autoencoder, grid: {lr: []}}]\n",
        "mixedkeys.yaml": "runs: [{model: toy_autoencoder, grid: {1: [1], lr: [1]}}]\n",
        "deep.yaml": "runs: " + "[" * 3000 + "]" * 3000 + "\n",
        "laughs_set.yaml": "x:\n" + "".join(f"  {line}\n" for line in laughs)
                           + "runs: [{model: toy_autoencoder, set: {lr: *a9}}]\n",
        "laughs_grid.yaml": "x:\n" + "".join(f"  {line}\n" for line in laughs)
                            + "runs: [{model: toy_autoencoder, grid: {lr: *a9}}]\n",
        "biggrid.yaml": "runs: [{model: toy_autoencoder, grid: {lr: [" + ",".join(
            str(i) for i in range(20_000)) + "]}}]\n",
        "badname.yaml": "name: \"x' OR '1'='1\"\nruns: [{model: toy_autoencoder}]\n",
        "badmodel.yaml": "runs: [{model: nosuch}]\n",
        "badset.yaml": "runs: [{model: toy_autoencoder, set: {lr: fast}}]\n",
        "badsteps.yaml": "steps: -4\nruns: [{model: toy_autoencoder}]\n",
        "badseed.yaml": "seeds: [x]\nruns: [{model: toy_autoencoder}]\n",
        "twice.yaml": "runs: [{model: toy_autoencoder}, {model: toy_autoencoder}]\n",
    }
    paths = []
    for name, text in texts.items():
        (folder / name).write_text(text)
        paths.append(str(folder / name))
    (folder / "utf16.yaml").write_bytes("runs: [{model: toy_autoencoder}]".encode("utf-16"))
    (folder / "big.yaml").write_bytes(b"description: '" + b"x" * 1_100_000 + b"'\n")
    (folder / "folder.yaml").mkdir()
    return paths + [str(folder / n) for n in ("utf16.yaml", "big.yaml", "folder.yaml")]


def corpus(folder: Path) -> list[list[str]]:
    """Every hostile invocation (files it needs are written into ``folder``)."""
    cases: list[list[str]] = []
    for option in RANGED:
        cases += [["run", *TOY, option, value] for value in BAD_INTS + RANGED[option]]
    cases += [["run", *TOY, "--device", device] for device in DEVICES]
    cases += [["evaluate", "abc", "--device", device] for device in DEVICES[:4]]
    for data_dir in [LONG, HUGE, "/dev/null", "/proc/nosuch"]:
        cases += [["run", "beta_vae", "--dataset", "dsprites", "--no-progress", "--steps", "1",
                   "--data-dir", data_dir],
                  ["run", "toy_autoencoder", "--dataset", "mnist", "--no-progress",
                   "--data-dir", data_dir],
                  ["data", "fetch", "mnist", "--data-dir", data_dir]]
    for uri in URIS:
        cases += [["run", *TOY, "--tracking-uri", uri], ["evaluate", "abc", "--tracking-uri", uri],
                  ["compare", "--tracking-uri", uri], ["ui", "--tracking-uri", uri],
                  ["bench", "smoke", "--dry-run", "--tracking-uri", uri]]
    for name in NAMES:
        cases += [["run", name, "--dataset", "toy_blobs", "--no-progress"],
                  ["run", "toy_autoencoder", "--dataset", name, "--no-progress"],
                  ["show", name], ["show", "toy_autoencoder", "--dataset", name],
                  ["data", "fetch", name]]
    for run_id in RUN_IDS:
        cases += [["run", "--resume", run_id, "--no-progress"], ["evaluate", run_id],
                  ["sync", run_id]]
    cases += [["run", *TOY, "--set", value] for value in SETS]
    cases += [["run", "--resume", "abc", "--set", "lr=1"]]
    cases += [["run", *TOY[:-6], "--metrics", value] for value in METRICS]
    cases += [["evaluate", "abc", "--param", value] for value in PARAMS]
    cases += [["evaluate", "abc", "--metrics", value] for value in METRICS]
    for suite in ["x' OR '1'='1", "a b", HUGE, "../x", "", "\u00e9t\u00e9"]:
        cases += [["compare", "--suite", suite], ["bench", suite, "--dry-run"],
                  ["report", "--suite", suite]]
    for path in ["/nonexistent/x.png", f"/tmp/{LONG}/x.png", "/", "", "/proc/x/y.csv"]:
        cases += [["compare", "--plot", path], ["compare", "--csv", path],
                  ["compare", "--curves", path]]
    cases += [["compare", "--experiment", "nosuch"], ["compare", "--metrics", "nosuch"]]
    for port in ["-1", "0", "65536", "99999999", "x", ""]:
        cases.append(["ui", "--port", port])
    for host in ["bad host name", "", HUGE, "256.256.256.256"]:
        cases.append(["ui", "--host", host])
    suites = _suite_files(folder)
    cases += [["bench", path, "--dry-run"] for path in suites]
    cases += [["bench", path] for path in suites[:6]]
    cases += [[], ["nosuch"], ["data"], ["data", "nosuch"], ["run", "--steps"], ["show"],
              ["evaluate"], ["run"], ["run", *TOY, "--unknown-option"], ["list", "extra"],
              ["bench"], ["compare", "extra"], ["report"], ["ui", "extra"], ["sync", "--nosuch"]]
    return cases
