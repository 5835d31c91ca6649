"""Large photos: a 12-megapixel collection made from Flowers-102, and what ingest, embed and query cost on it.

Usage: python benchmarks/photos.py --workspace WS --flowers DIR --collection DIR [--jpegs 500] [--heic 100]
       [--side 3464] [--json out.json]
WS holds a trained model (default mnv2) and an ivf index over the 64 px Flowers catalogue; it is only read.
The collection (generated once into DIR, never committed) is the first N test-split images upscaled to
SIDE × SIDE (3464² ≈ 12 MP; square, so the centre crop sees the same picture as at 64 px) as JPEG (quality 90),
plus M of them as HEIC (with a 512 px embedded thumbnail, as phones write them) when pillow-heif is installed. Reported (JSON and one line each):
- ingest images/s of the JPEGs (a fresh throw-away workspace; every file decoded to prove it is whole);
- embed images/s of the JPEGs against the same images at 64 px (same model, same batch size);
- a cold `indexer query` of one 12 MP JPEG (and of its 64 px original): seconds and peak resident memory;
- warm in-process query latency of one 12 MP JPEG (model and index loaded), p50 / p95 over 20 runs;
- peak resident memory of decoding one 12 MP JPEG / HEIC for the model (a new process each);
- retrieval quality: P@1 of the 12 MP copies queried against the 64 px test catalogue (themselves excluded), next
  to the same images queried at 64 px.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_collection(flowers: Path, out: Path, test_names: list[str], jpegs: int, heic: int, side: int) -> dict:
    """Upscaled copies of test images: ``NAME.jpg`` (12 MP JPEG) and ``NAME.heic``; existing files are kept."""
    from PIL import Image

    from indexer.core.files import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    made = {"jpeg": [], "heic": []}
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        heic = 0
    for number, name in enumerate(test_names[:jpegs]):
        stem = Path(name).stem
        targets = [("jpeg", out / f"{stem}.jpg")] + ([("heic", out / f"{stem}.heic")] if number < heic else [])
        for kind, target in targets:
            if not target.exists():
                with Image.open(flowers / "jpg" / name) as img:
                    big = img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
                extra = {"thumbnails": [512]} if kind == "heic" else {}  # phones embed a small preview too
                with atomic_path(target) as partial:
                    big.save(partial, format="JPEG" if kind == "jpeg" else "HEIF", quality=90, **extra)
            made[kind].append(target)
    return made


def peak_decode_mb(path: Path, image_size: int) -> float:
    """Resident memory a new process gains at its peak while decoding ``path`` for a model of ``image_size`` px.

    After the imports, the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``), so the figure is the
    decode's own high-water mark above the resident memory it started from.
    """
    code = (
        "import sys, re\n"
        "try:\n    import pillow_heif; pillow_heif.register_heif_opener()\nexcept ImportError:\n    pass\n"
        "from models.preprocess import PreprocessSpec, load_and_preprocess\n"
        "import numpy, PIL.Image\n"
        "def kib(field):\n"
        "    return int(re.search(field + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = kib('VmRSS')\n"
        "load_and_preprocess(sys.argv[1], PreprocessSpec(int(sys.argv[2])))\n"
        "print((kib('VmHWM') - before) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), str(image_size)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def cold_query(workspace: str, image: Path) -> dict:
    """A new `indexer query` process: wall seconds and peak resident MB (median of 3)."""
    indexer = str(Path(sys.executable).with_name("indexer"))
    runs = []
    for _ in range(3):
        out = subprocess.run(["/usr/bin/time", "-f", "%e %M", indexer, "--workspace", workspace, "query", str(image),
                              "--index", "ivf"], capture_output=True, text=True, check=True)
        seconds, kib = out.stderr.strip().splitlines()[-1].split()
        runs.append((float(seconds), int(kib) / 1024))
    return {"seconds": statistics.median(r[0] for r in runs), "peak_mb": statistics.median(r[1] for r in runs)}


def warm_service_query(workspace: str, image: Path, runs: int = 30) -> dict:
    """Start `indexer serve` on loopback, POST ``image`` to /query ``runs`` times after one warm-up: p50 / p95 ms
    of the whole HTTP round trip (upload, decode, embed, search, catalog rows), then stop the service."""
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_load import _free_port, _wait_ready

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "--workspace", workspace, "serve", "--index",
                               "ivf", "--port", str(port), "--max-upload-mb", "50"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, server)
        data = image.read_bytes()
        times = []
        with httpx.Client(timeout=60) as client:
            for run in range(runs + 1):
                began = time.perf_counter()
                answer = client.post(url + "/query?k=10", files={"image": (image.name, data, "image/jpeg")})
                answer.raise_for_status()
                if run:  # the first is the warm-up
                    times.append((time.perf_counter() - began) * 1e3)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"p50": round(float(statistics.median(times)), 1), "p95": round(sorted(times)[int(0.95 * len(times)) - 1], 1),
            "runs": runs, "megabytes": round(len(data) / 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--flowers", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--model", default="mnv2")
    parser.add_argument("--jpegs", type=int, default=500)
    parser.add_argument("--heic", type=int, default=100)
    parser.add_argument("--side", type=int, default=3464)
    parser.add_argument("--json", default=None)
    parser.add_argument("--decode-only", action="store_true", help="only the peak memory of one decode")
    parser.add_argument("--service-only", action="store_true",
                        help="only the warm service query: POST /query of one 12 MP JPEG to `indexer serve`")
    args = parser.parse_args()

    import numpy as np

    from indexer.api import Searcher, Workspace, catalog_vectors, ingest_directory
    from indexer.core.files import write_json
    from indexer.core.metrics import precision_at_1
    from indexer.core.search import exact_search
    from models.embed import embed_items
    from models.embedding_store import EmbeddingStore

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        model = catalog.model(args.model)
        test_rows = [row for row in catalog.images(splits=["test"]) if row.label_id is not None]
    checkpoint = workspace.resolve(model.path)
    image_size = int(model.params["preprocess"]["image_size"])
    by_name = {Path(row.path).name: row for row in test_rows}
    flowers = Path(args.flowers)
    names = sorted(by_name)[: args.jpegs]
    began = time.perf_counter()
    collection = make_collection(flowers, Path(args.collection), names, args.jpegs, args.heic, args.side)
    results: dict = {"side": args.side, "jpegs": len(collection["jpeg"]), "heic": len(collection["heic"]),
                     "collection_s": round(time.perf_counter() - began, 1)}
    print(f"collection: {results['jpegs']} JPEGs and {results['heic']} HEIC files at {args.side}x{args.side}")
    if args.decode_only:
        _decode_peaks(results, collection, image_size)
        return
    if args.service_only:
        results["warm_service_query_ms"] = warm_service_query(args.workspace, collection["jpeg"][0])
        print(f"warm service query of one 12 MP JPEG (POST /query): {results['warm_service_query_ms']}")
        return

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        report = ingest_directory(Workspace.at(Path(tmp) / "ws"), args.collection, labels="none", progress=False)
        seconds = time.perf_counter() - began
        results["ingest"] = {"images": report.seen, "ok": report.ingested, "errors": report.errors,
                             "images_per_s": round(report.seen / seconds, 2)}
    print(f"ingest: {results['ingest']}")

    big = [(by_name[p.stem + ".jpg"].id, str(p)) for p in collection["jpeg"]]
    small = [(image_id, by_name[Path(path).stem + ".jpg"].path) for image_id, path in big]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, items in (("64px", small), ("12mp", big)):
            store = EmbeddingStore(Path(tmp) / label)
            rates[label] = embed_items(checkpoint, items, store, batch_size=64, progress=False)
            rates[label + "_vectors"] = (store.ids(), np.asarray(store.vectors(mmap=False)))
    results["embed"] = {"images_per_s_64px": round(rates["64px"].images_per_s, 1),
                        "images_per_s_12mp": round(rates["12mp"].images_per_s, 1),
                        "share_of_64px": round(rates["12mp"].images_per_s / rates["64px"].images_per_s, 3),
                        "failed_12mp": len(rates["12mp"].failed)}
    print(f"embed: {results['embed']}")

    ids, vectors = catalog_vectors(workspace, args.model)
    test_ids = np.array(sorted(row.id for row in test_rows))
    keep = np.isin(ids, test_ids)
    base_ids, base = ids[keep], vectors[keep]
    label_of = {row.id: row.label_id for row in test_rows}
    quality = {}
    for label in ("64px", "12mp"):
        query_ids, query_vectors = rates[label + "_vectors"]
        _, found = exact_search(base, base_ids, query_vectors, 1, exclude_self_ids=query_ids)
        quality[label] = precision_at_1(np.array([label_of[int(i)] for i in query_ids]),
                                        np.vectorize(lambda i: label_of.get(int(i), -1))(found))
    results["quality"] = {"p_at_1_64px_queries": round(quality["64px"], 4), "p_at_1_12mp_queries": round(quality["12mp"], 4),
                          "queries": len(big)}
    print(f"quality: {results['quality']}")

    one_big, one_small = Path(big[0][1]), Path(small[0][1])
    results["cold_query"] = {"12mp": cold_query(args.workspace, one_big), "64px": cold_query(args.workspace, one_small)}
    print(f"cold query: {results['cold_query']}")
    searcher = Searcher(workspace, "ivf")
    searcher.answer([str(one_big)], k=10)
    times = []
    for _ in range(20):
        began = time.perf_counter()
        searcher.answer([str(one_big)], k=10)
        times.append((time.perf_counter() - began) * 1e3)
    results["warm_query_ms"] = {"p50": round(float(np.median(times)), 1), "p95": round(float(np.percentile(times, 95)), 1)}
    print(f"warm in-process query of one 12 MP JPEG: {results['warm_query_ms']}")
    _decode_peaks(results, collection, image_size)
    if args.json:
        write_json(args.json, results, indent=2)


def _decode_peaks(results: dict, collection: dict, image_size: int) -> None:
    results["decode_peak_mb"] = {"jpeg": round(peak_decode_mb(collection["jpeg"][0], image_size), 1)}
    if collection["heic"]:
        results["decode_peak_mb"]["heic"] = round(peak_decode_mb(collection["heic"][0], image_size), 1)
    print(f"peak memory of one decode for the model: {results['decode_peak_mb']}")


if __name__ == "__main__":
    main()
