"""The endpoints: each reads the request, calls :class:`indexer.api.LiveCatalog` once and shapes the answer."""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile as StarletteUpload

from indexer import api
from indexer.service.schemas import (
    AddedOut,
    AnswerOut,
    CatalogFieldsOut,
    CompactedOut,
    ErrorOut,
    FieldsIn,
    FieldsOut,
    HealthOut,
    IndexOut,
    PointIn,
    RemovedOut,
    StatusOut,
    VectorQueryIn,
)

ERRORS = {status: {"model": ErrorOut} for status in (400, 404, 413, 422, 500, 503)}
WRITE_ERRORS = {**ERRORS, 403: {"model": ErrorOut}}
QUERY_BODIES = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": {"type": "string", "format": "binary"},
                                                      "filter": {"type": "string"}}}},
    "application/json": {"schema": VectorQueryIn.model_json_schema()},
}}}


def add_routes(app: FastAPI, config, current, writer, watching=lambda: None) -> None:
    k_query = Query(config.k, ge=1, le=api.MAX_K, description="results to return")
    index_query = Query(None, description="index name (default: the one the service was started with)")
    image_id = Path(..., ge=1, le=2**62)
    rerank_query = Query("none", pattern=f"^({'|'.join(api.RERANK_MODES)})$",
                         description="re-ranking: none, qe (query expansion), dba (an index built with it)")
    filter_query = Query(None, alias="filter",
                         description='only images matching this filter, e.g. label = "rose" and width >= 500')
    min_score_query = Query(None, description="drop results scoring below this (fewer than k may come back)")
    offset_query = Query(None, ge=0, le=10_000, description="skip this many of the best results (a page's start)")
    token_query = Query(None, description="the next_page_token of the previous page (instead of offset)")
    complete_query = Query(False, description="a sharded index (serve --ray): 503 rather than a partial answer "
                                              "when a shard does not answer")

    def narrowing(where, min_score, offset, token, complete=False) -> dict:
        """The keyword arguments of a query's filter, cutoff and page (a page token counts as its offset), and
        whether only a complete answer will do."""
        if token is not None and offset is not None:
            raise HTTPException(422, "give offset or page_token, not both")
        start = api.offset_of(token) if token is not None else (offset or 0)
        return {"where": where, "min_score": min_score, "offset": start, "complete": complete}

    def within_limit(data: bytes, name: str | None) -> bytes:
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, f"{name or 'upload'}: over --max-upload-mb ({config.max_upload_mb:g} MiB)")
        return data

    def read_upload(image: UploadFile) -> bytes:
        return within_limit(image.file.read(config.max_upload_bytes + 1), image.filename)

    @app.post("/query", summary="Top k catalog images for an uploaded image, or for a vector sent as JSON",
              response_model=AnswerOut, responses=ERRORS, openapi_extra=QUERY_BODIES)
    async def query(request: Request, response: Response, k: int = k_query, index: str | None = index_query,
                    rerank: str = rerank_query, where: str | None = filter_query,
                    min_score: float | None = min_score_query, offset: int | None = offset_query,
                    page_token: str | None = token_query, complete: bool = complete_query) -> dict:
        live = current()
        if request.headers.get("content-type", "").startswith("application/json"):
            body = _validated(VectorQueryIn, await _json(request))
            check_k(body.k)
            narrow = narrowing(body.filter if body.filter is not None else where,
                               body.min_score if body.min_score is not None else min_score,
                               body.offset if body.offset is not None else offset,
                               body.page_token if body.page_token is not None else page_token, complete)
            if (body.vector is None) == (body.examples is None):
                raise HTTPException(422, "give vector or examples (one of the two)")
            if body.examples is not None:
                examples = [api.Example(id=item.id, vector=item.vector, weight=item.weight) for item in body.examples]
                answer = await run_in_threadpool(live.search_examples, examples, k=body.k or k,
                                                 index_name=body.index or index, rerank=body.rerank or rerank,
                                                 **narrow)
            else:
                answer = await run_in_threadpool(live.search_vector, body.vector, k=body.k or k,
                                                 index_name=body.index or index, rerank=body.rerank or rerank,
                                                 **narrow)
            return _answer(answer, response)
        form = await request.form()
        images = [item for item in form.getlist("image") if isinstance(item, StarletteUpload)]
        if not images:
            raise HTTPException(422, "image: Field required (a multipart file, or JSON {\"vector\": [...]})")
        form_filter = form.get("filter")
        narrow = narrowing(form_filter if isinstance(form_filter, str) and form_filter.strip() else where,
                           min_score, offset, page_token, complete)
        weights = form.get("weights")
        if len(images) > 1 or isinstance(weights, str):
            examples = await _examples(images, weights, within_limit, config.max_upload_bytes)
            answer = await run_in_threadpool(live.search_examples, examples, k=k, index_name=index, rerank=rerank,
                                             **narrow)
            return _answer(answer, response)
        image = images[0]
        data = within_limit(await image.read(config.max_upload_bytes + 1), image.filename)
        answer = await run_in_threadpool(live.search_bytes, data, image.filename or "upload", k=k, index_name=index,
                                         rerank=rerank, **narrow)
        return _answer(answer, response)

    @app.post("/points", status_code=201, summary="Add a vector to a model made by 'indexer import', and index it",
              dependencies=[Depends(writer)], response_model=AddedOut, responses=WRITE_ERRORS)
    def add_point(point: PointIn) -> dict:  # FastAPI validates the body (422 naming the field)
        outcome = current().add_point(point.path, point.vector, label=point.label, split=point.split)
        return {"id": outcome.id, "path": outcome.path, "duplicate_of": None, "indexes": outcome.indexes}

    def check_k(value: int | None) -> None:
        if value is not None and not 1 <= value <= api.MAX_K:
            raise HTTPException(422, f"k: must be in 1..{api.MAX_K}; got {value}")

    @app.get("/images/{image_id}/similar", summary="Top k catalog images like a catalogued one (itself excluded)",
             response_model=AnswerOut, responses=ERRORS)
    def similar(response: Response, image_id: int = image_id, k: int = k_query, index: str | None = index_query,
                rerank: str = rerank_query, where: str | None = filter_query,
                min_score: float | None = min_score_query, offset: int | None = offset_query,
                page_token: str | None = token_query, complete: bool = complete_query) -> dict:
        narrow = narrowing(where, min_score, offset, page_token, complete)
        return _answer(current().similar(image_id, k=k, index_name=index, rerank=rerank, **narrow), response)

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

    @app.patch("/images/{image_id}", summary="Set user fields of a catalogued image (filterable at once)",
               dependencies=[Depends(writer)], response_model=FieldsOut, responses=WRITE_ERRORS)
    def patch_image(body: FieldsIn, image_id: int = image_id) -> dict:
        fields = current().set_fields(image_id, dict(body.fields), types=body.types)
        return {"id": image_id, "fields": {name: value.isoformat() if hasattr(value, "isoformat") else value
                                           for name, value in fields.items()}}

    @app.delete("/images/{image_id}", summary="Remove an image from the catalog, every index and every store",
                dependencies=[Depends(writer)], response_model=RemovedOut, responses=WRITE_ERRORS)
    def delete(image_id: int = image_id) -> dict:
        current().delete_image(image_id)
        return {"id": image_id, "removed": True}

    @app.post("/compact", summary="Fold every served index's pending changes into its file now",
              dependencies=[Depends(writer)], response_model=CompactedOut, responses=WRITE_ERRORS)
    def compact() -> dict:
        live = current()
        started = time.perf_counter()
        saved = live.flush()
        return {"saved": saved, "seconds": round(time.perf_counter() - started, 3)}

    @app.get("/indexes", summary="The served indexes", response_model=list[IndexOut])
    def indexes() -> list[dict]:
        return current().indexes()

    @app.get("/status", summary="What 'indexer status --json' prints, and the indexes with unsaved changes",
             response_model=StatusOut)
    def status() -> dict:
        live = current()  # a read: it saves nothing (unsaved changes are listed, and saved by the service)
        watcher = watching()
        return {**api.catalog_status(live.workspace), "unsaved_indexes": live.unsaved(),
                "watch": watcher.status().to_dict() if watcher is not None else None}

    @app.get("/fields", summary="What a filter can name: the user fields (with types) and the labels",
             response_model=CatalogFieldsOut)
    def fields() -> dict:
        return api.catalog_fields(current().workspace)

    @app.get("/healthz", summary="Ready once the model and indexes are loaded", response_model=HealthOut)
    def healthz() -> dict:
        current()
        return {"ok": True}


async def _examples(images: list, weights: object, within_limit, limit: int) -> list:
    """Uploaded images as weighted examples: ``weights`` "1,1,-0.5", one per image in order (default 1 each)."""
    values = [1.0] * len(images)
    if isinstance(weights, str):
        try:
            values = [float(part) for part in weights.split(",")]
        except ValueError:
            raise HTTPException(422, f"weights: expected numbers separated by commas; got {weights[:60]!r}") from None
        if len(values) != len(images):
            raise HTTPException(422, f"weights: {len(values)} given for {len(images)} images")
    examples = []
    for image, weight in zip(images, values):
        data = within_limit(await image.read(limit + 1), image.filename)
        examples.append(api.Example(data=data, name=image.filename or "upload", weight=weight))
    return examples


def _validated(model, body: object):
    """``body`` as the Pydantic ``model``; 422 naming the first field that is wrong."""
    from pydantic import ValidationError

    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise HTTPException(422, f"{where}: {first.get('msg', 'invalid')}") from None


async def _json(request: Request) -> object:
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"the JSON body does not parse: {exc}") from None


def _answer(answer, response: Response) -> dict:
    response.headers["Server-Timing"] = ", ".join(f"{name};dur={ms:.3f}" for name, ms in answer.timings_ms.items())
    return answer.to_dict()
