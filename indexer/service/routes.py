"""The endpoints: each reads the request, calls :class:`indexer.api.LiveCatalog` once and shapes the answer."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from indexer import api


def add_routes(app: FastAPI, config, current, writer) -> None:
    k_query = Query(config.k, ge=1, le=api.MAX_K, description="results to return")
    index_query = Query(None, description="index name (default: the one the service was started with)")
    image_id = Path(..., ge=1, le=2**62)
    rerank_query = Query("none", pattern=f"^({'|'.join(api.RERANK_MODES)})$",
                         description="re-ranking: none, qe (query expansion), dba (an index built with it)")

    def read_upload(image: UploadFile) -> bytes:
        limit = config.max_upload_bytes
        data = image.file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"{image.filename or 'upload'}: over --max-upload-mb ({config.max_upload_mb:g} MiB)")
        return data

    @app.post("/query", summary="Top k catalog images for an uploaded image")
    def query(image: Annotated[UploadFile, File()], k: int = k_query, index: str | None = index_query,
              rerank: str = rerank_query) -> JSONResponse:
        data = read_upload(image)
        answer = current().search_bytes(data, image.filename or "upload", k=k, index_name=index, rerank=rerank)
        return _answer(answer)

    @app.get("/images/{image_id}/similar", summary="Top k catalog images like a catalogued one (itself excluded)")
    def similar(image_id: int = image_id, k: int = k_query, index: str | None = index_query,
                rerank: str = rerank_query) -> JSONResponse:
        return _answer(current().similar(image_id, k=k, index_name=index, rerank=rerank))

    @app.get("/images/{image_id}", summary="A catalogued image's bytes", response_class=FileResponse)
    def image(image_id: int = image_id) -> FileResponse:
        row = current().image(image_id)
        return FileResponse(row.path, media_type=api.content_type(row.path))

    @app.post("/images", status_code=201, summary="Add an image to the catalog and every index of the served model",
              dependencies=[Depends(writer)])
    def add(image: Annotated[UploadFile, File()], label: Annotated[str | None, Form()] = None,
            split: Annotated[str | None, Form()] = None) -> JSONResponse:
        data = read_upload(image)
        outcome = current().add_image(data, image.filename or "upload", label=label, split=split)
        body = {"id": outcome.id, "path": outcome.path, "duplicate_of": outcome.duplicate_of,
                "indexes": outcome.indexes}
        return JSONResponse(body, status_code=201 if outcome.created else 200)

    @app.delete("/images/{image_id}", summary="Remove an image from the catalog, every index and every store",
                dependencies=[Depends(writer)])
    def delete(image_id: int = image_id) -> dict:
        current().delete_image(image_id)
        return {"id": image_id, "removed": True}

    @app.get("/indexes", summary="The served indexes")
    def indexes() -> list[dict]:
        return current().indexes()

    @app.get("/status", summary="What 'indexer status --json' prints (index changes not yet saved are saved first)")
    def status() -> JSONResponse:
        live = current()
        live.flush()  # the status checks the files: make them current
        summary = api.catalog_status(live.workspace)
        return JSONResponse(json.loads(json.dumps(summary, default=str)))

    @app.get("/healthz", summary="Ready once the model and indexes are loaded")
    def healthz() -> dict:
        current()
        return {"ok": True}


def _answer(answer) -> JSONResponse:
    body = {"query": answer.query, "index": answer.index, "took_ms": round(answer.took_ms, 3),
            "results": [hit.to_dict() for hit in answer.results]}
    timing = ", ".join(f"{name};dur={ms:.3f}" for name, ms in answer.timings_ms.items())
    return JSONResponse(body, headers={"Server-Timing": timing})
