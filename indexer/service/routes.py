"""The endpoints: each reads the request, calls :class:`indexer.api.LiveCatalog` once and shapes the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Path, Query, Response, UploadFile
from fastapi.responses import FileResponse

from indexer import api
from indexer.service.schemas import AddedOut, AnswerOut, ErrorOut, HealthOut, IndexOut, RemovedOut, StatusOut

ERRORS = {status: {"model": ErrorOut} for status in (400, 404, 413, 422, 500)}
WRITE_ERRORS = {**ERRORS, 403: {"model": ErrorOut}}


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

    @app.post("/query", summary="Top k catalog images for an uploaded image", response_model=AnswerOut,
              responses=ERRORS)
    def query(response: Response, image: Annotated[UploadFile, File()], k: int = k_query,
              index: str | None = index_query, rerank: str = rerank_query) -> dict:
        data = read_upload(image)
        answer = current().search_bytes(data, image.filename or "upload", k=k, index_name=index, rerank=rerank)
        return _answer(answer, response)

    @app.get("/images/{image_id}/similar", summary="Top k catalog images like a catalogued one (itself excluded)",
             response_model=AnswerOut, responses=ERRORS)
    def similar(response: Response, image_id: int = image_id, k: int = k_query, index: str | None = index_query,
                rerank: str = rerank_query) -> dict:
        return _answer(current().similar(image_id, k=k, index_name=index, rerank=rerank), response)

    @app.get("/images/{image_id}", summary="A catalogued image's bytes", response_class=FileResponse,
             responses={404: {"model": ErrorOut}})
    def image(image_id: int = image_id) -> FileResponse:
        row = current().image(image_id)
        return FileResponse(row.path, media_type=api.content_type(row.path))

    @app.post("/images", status_code=201, summary="Add an image to the catalog and every index of the served model",
              dependencies=[Depends(writer)], response_model=AddedOut,
              responses={**WRITE_ERRORS, 200: {"model": AddedOut, "description": "a byte-identical copy: not added"}})
    def add(response: Response, image: Annotated[UploadFile, File()], label: Annotated[str | None, Form()] = None,
            split: Annotated[str | None, Form()] = None) -> dict:
        data = read_upload(image)
        outcome = current().add_image(data, image.filename or "upload", label=label, split=split)
        response.status_code = 201 if outcome.created else 200
        return {"id": outcome.id, "path": outcome.path, "duplicate_of": outcome.duplicate_of,
                "indexes": outcome.indexes}

    @app.delete("/images/{image_id}", summary="Remove an image from the catalog, every index and every store",
                dependencies=[Depends(writer)], response_model=RemovedOut, responses=WRITE_ERRORS)
    def delete(image_id: int = image_id) -> dict:
        current().delete_image(image_id)
        return {"id": image_id, "removed": True}

    @app.get("/indexes", summary="The served indexes", response_model=list[IndexOut])
    def indexes() -> list[dict]:
        return current().indexes()

    @app.get("/status", summary="What 'indexer status --json' prints, and the indexes with unsaved changes",
             response_model=StatusOut)
    def status() -> dict:
        live = current()  # a read: it saves nothing (unsaved changes are listed, and saved by the service)
        return {**api.catalog_status(live.workspace), "unsaved_indexes": live.unsaved()}

    @app.get("/healthz", summary="Ready once the model and indexes are loaded", response_model=HealthOut)
    def healthz() -> dict:
        current()
        return {"ok": True}


def _answer(answer, response: Response) -> dict:
    response.headers["Server-Timing"] = ", ".join(f"{name};dur={ms:.3f}" for name, ms in answer.timings_ms.items())
    return answer.to_dict()
