"""The MLflow UI as a person sees it: this workspace's runs on the "PSNR / SSIM" view, ranked by
the one `psnr_y` column, with every trained model and bicubic in it (issue 20's browser check).

    python benchmarks/ui_ranking.py --chromium /path/to/chromium [--out benchmarks/results/ui_ranking]

Run it in a workspace after `dvc repro`. It starts `srbench ui` on a free port, opens the address
`srbench ui` prints in headless Chromium (driven over the DevTools protocol; MLflow serves its own
UI, so no network is needed), waits for the runs table, and writes what the browser showed: the
screenshot `ui_ranking.png` and the table's rows in screen order, `ui_ranking.json` (run name,
the version it registered or scored, psnr_y as displayed). It checks that every model of `report.models` has a training and an
evaluation row, bicubic an evaluation row, and that the psnr_y column descends; it prints the
table and exits 1 if a check fails.
"""

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp  # an MLflow dependency: the DevTools protocol's WebSocket
import yaml

WIDTH, HEIGHT = 2200, 1300
#: The rendered table, row by row (AG Grid: rows by row-index across its pinned and centre parts,
#: cells by column id), and the grid's column headers.
READ_TABLE = """
(() => {
  const rows = {};
  for (const row of document.querySelectorAll('.ag-row[row-index]')) {
    const cells = rows[row.getAttribute('row-index')] ||= {};
    for (const cell of row.querySelectorAll('.ag-cell[col-id]')) cells[cell.getAttribute('col-id')] = cell.innerText.trim();
  }
  return JSON.stringify(Object.entries(rows).sort((a, b) => a[0] - b[0]).map(entry => entry[1]));
})()
"""

#: MLflow 3.17 opens an assistant panel beside the table: closed, the table shows more columns.
CLOSE_ASSISTANT = "document.querySelector('button[aria-label=\"Close\"]')?.click()"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_ui(port: int) -> tuple[subprocess.Popen, str]:
    """`srbench ui` on ``port``, and the runs address it prints once the server answers."""
    log = tempfile.TemporaryFile(mode="w+")
    srbench = shutil.which("srbench") or str(Path(sys.executable).parent / "srbench")
    ui = subprocess.Popen([srbench, "ui", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(f"http://127.0.0.1:{port}/health", 90)
    log.seek(0)
    found = re.search(r"(http://\S+/runs\?\S+)", log.read())
    if found is None:
        raise SystemExit("srbench ui printed no runs address")
    return ui, found.group(1)


async def browse(chromium: str, url: str) -> tuple[list[dict], bytes]:
    """The runs table's rows and a screenshot of ``url`` in headless Chromium."""
    profile = tempfile.mkdtemp(prefix="ui-ranking-")
    port = free_port()
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--remote-debugging-port={port}",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/json/version", 60)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(target for target in targets if target["type"] == "page")
        async with aiohttp.ClientSession() as session, session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket_:
            counter = 0

            async def call(method: str, **params: object) -> dict:
                nonlocal counter
                counter += 1
                await socket_.send_json({"id": counter, "method": method, "params": params})
                while True:
                    message = await socket_.receive_json()
                    if message.get("id") == counter:
                        if "error" in message:
                            raise RuntimeError(f"{method}: {message['error']}")
                        return message["result"]

            await call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            rows: list[dict] = []
            for _ in range(120):  # the table fills in after the UI has loaded and fetched the runs
                await asyncio.sleep(0.5)
                value = (await call("Runtime.evaluate", expression=READ_TABLE))["result"].get("value")
                found = json.loads(value) if value else []
                if found and found == rows:  # two reads alike: rendered
                    break
                rows = found
            await call("Runtime.evaluate", expression=CLOSE_ASSISTANT)
            await asyncio.sleep(2)
            rows = json.loads((await call("Runtime.evaluate", expression=READ_TABLE))["result"]["value"])  # wider now
            shot = await call("Page.captureScreenshot", format="png")
            return rows, base64.b64decode(shot["data"])
    finally:
        browser.terminate()
        browser.wait(30)
        shutil.rmtree(profile, ignore_errors=True)


def column(row: dict, name: str) -> str:
    """The cell of column ``name`` (AG Grid's column ids carry a prefix: metrics.`psnr_y`, tags.model)."""
    return next((value for key, value in row.items() if key.replace("`", "").endswith(name)), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"), help="a Chromium or Chrome binary")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ui_ranking"))
    args = parser.parse_args()
    models = [model for model in yaml.safe_load(Path("params.yaml").read_text())["report"]["models"] if model != "bicubic"]

    ui, url = start_ui(free_port())
    try:
        rows, png = asyncio.run(browse(args.chromium, url))
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(60)
    table = [
        {"run": column(row, "Run Name").splitlines()[-1], "registered": " ".join(column(row, "Models").split()), "scored": column(row, "model_version"), "psnr_y": column(row, "psnr_y")}
        for row in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ui_ranking.png").write_bytes(png)
    (args.out / "ui_ranking.json").write_text(json.dumps({"url": url, "rows": table, "columns": sorted({key for row in rows for key in row})}, indent=2) + "\n")

    print(f"{url}\n\n| rank | run | registered (Models) | scored (model_version) | psnr_y |\n|---|---|---|---|---|")
    for rank, row in enumerate(table, 1):
        print(f"| {rank} | {row['run']} | {row['registered']} | {row['scored']} | {row['psnr_y']} |")
    scored = [row for row in table if row["psnr_y"] not in ("", "-")]
    values = [float(row["psnr_y"]) for row in scored]
    names = {row["run"].split(" #")[0] for row in scored}
    missing = [name for model in models for name in (f"train@{model}", f"evaluate@{model}") if name not in names]
    missing += [] if "evaluate@bicubic" in names else ["evaluate@bicubic"]
    problems = ([f"no psnr_y row for {', '.join(missing)}"] if missing else []) + ([] if values == sorted(values, reverse=True) else ["psnr_y does not descend"])
    problems += [] if scored == table[: len(scored)] else ["a run without psnr_y ranks above one with it"]
    print(f"\n{len(scored)} runs ranked by psnr_y, {len(table) - len(scored)} without it; screenshot: {args.out / 'ui_ranking.png'}")
    if problems:
        raise SystemExit("; ".join(problems))
    print("every model's training and evaluation and bicubic's evaluation in one descending psnr_y column")


if __name__ == "__main__":
    main()
