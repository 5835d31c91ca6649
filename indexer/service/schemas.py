"""The service's answers as Pydantic models, so ``/openapi.json`` (and ``/docs``) describe what each holds.

The field names and rounding are those of :meth:`indexer.api.Answer.to_dict`, which the CLI's ``--json``
prints too: scores to 6 decimals, milliseconds to 3.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class HitOut(BaseModel):
    rank: int = Field(description="1-based rank, best first")
    id: int = Field(description="catalog image id")
    path: str = Field(description="the image file")
    label: str | None = Field(description="its label, when it has one")
    score: float = Field(description="inner product of the two embeddings (cosine similarity), 6 decimals")


class PlanOut(BaseModel):
    kind: str = Field(description="exact: the selected vectors compared one by one; filtered: the index's "
                                  "search restricted to them, nprobe / efSearch widened")
    selected: int = Field(description="catalog images that passed the filter")
    nprobe: int | None = Field(None, description="the IVF lists searched (filtered plan of an IVF index)")
    efSearch: int | None = Field(None, description="the HNSW search list (filtered plan of an HNSW index)")  # noqa: N815


class AnswerOut(BaseModel):
    query: str = Field(description="the uploaded file's name, or the stored image's path")
    query_id: int | None = Field(description="the query's catalog id when it is a catalogued image")
    label: str | None = Field(description="the query's own label when it is a catalogued image")
    index: str | None = Field(description="the index searched")
    took_ms: float = Field(description="decode + embed + (filter +) search + catalog milliseconds, 3 decimals")
    results: list[HitOut]
    plan: PlanOut | None = Field(None, description="a filtered query's plan (null without a filter)")
    next_page_token: str | None = Field(None, description="pass as page_token for the next page (while this one "
                                                          "came back full)")
    partial: bool = Field(False, description="a sharded index (serve --ray): some shards did not answer, so the "
                                             "results lack theirs")
    missing_shards: list[int] = Field(default_factory=list, description="the shards that did not answer")


class AddedOut(BaseModel):
    id: int = Field(description="the image's catalog id (the existing one for a byte-identical copy)")
    path: str = Field(description="where the image is stored")
    duplicate_of: int | None = Field(description="the catalogued image this upload is a byte-identical copy of")
    indexes: list[str] = Field(description="the served indexes that hold the image")


class RemovedOut(BaseModel):
    id: int
    removed: bool


class CompactedOut(BaseModel):
    saved: list[str] = Field(description="the indexes whose pending changes were folded into their files")
    seconds: float


class SegmentsOut(BaseModel):
    sealed: int = Field(description="vectors in the sealed index (the file's), its tail's included")
    tail: int = Field(0, description="of those, in a graph's tail: its folded adds, a small graph of their own")
    growing: int = Field(description="vectors added since, searched exactly")
    deleted: int = Field(description="deletion marks on sealed vectors, skipped by the search")


class IndexOut(BaseModel):
    name: str
    kind: str = Field(description="index kind (flat, ivf, hnsw, ...)")
    model: str = Field(description="the model whose embeddings it holds")
    ntotal: int = Field(description="vectors held now, unsaved changes included")
    dim: int
    segments: SegmentsOut


class WatchOut(BaseModel):
    folders: list[str] = Field(description="the watched folders (absolute)")
    mode: str = Field(description="events (the platform's notifications: inotify) or polling (a periodic scan)")
    mode_reason: str = Field(description="why that mode runs")
    labels: dict[str, str] = Field(description="each folder's label mode: folders (sub-folder names) or none")
    running: bool
    events_seen: int = Field(description="file-system events received")
    pending: int = Field(description="files waiting to settle or in the next batch")
    added: int
    changed: int
    removed: int
    moved: int = Field(description="files moved (matched by SHA-256: same id and vector, not embedded again)")
    duplicates: int = Field(description="byte-identical copies, recorded but not indexed")
    refused: int = Field(description="bad files, recorded in the catalog with their reason")
    embedded: int = Field(description="images the served model embedded for the watcher")
    batches: int
    scans: int = Field(description="reconciling scans of the folders (at start, after lost events)")
    last_batch_at: float | None = Field(description="Unix time of the last batch applied")
    last_error: str | None = Field(description="the last refused file or failure, one line")


class StatusOut(BaseModel):
    images_total: int
    images_ok: int
    images_error: int
    duplicates: int
    labels: int
    splits: dict[str, int] = Field(description="ok images by split")
    errors_by_split: dict[str, int]
    models: list[str]
    indexes: list[str]
    workspace: str
    database: str = Field(description="the catalog's URL, password hidden")
    inconsistencies: list[str] = Field(description="disagreements between the catalog and the saved files")
    unsaved_indexes: list[str] = Field(
        description="served indexes changed in memory since their files were last saved (saved within --save-every)")
    watch: WatchOut | None = Field(default=None, description="the folder watcher (serve --watch), else null")


class HealthOut(BaseModel):
    ok: bool


class ErrorOut(BaseModel):
    detail: str = Field(description="one line saying what was wrong")


class PointIn(BaseModel):
    path: str = Field(description="any unique string naming the item (a URL, a product id, a file path)")
    vector: list[float] = Field(description="the item's embedding, of the served model's dimension")
    label: str | None = None
    split: str | None = None


class ExampleIn(BaseModel):
    id: int | None = Field(None, description="a catalogued image (its stored vector)")
    vector: list[float] | None = Field(None, description="an embedding of the served model's dimension")
    weight: float = Field(1.0, description="its weight in the combined query; negative: results unlike it")


class VectorQueryIn(BaseModel):
    vector: list[float] | None = Field(None, description="a query embedding of the served model's dimension "
                                                         "(or examples)")
    examples: list[ExampleIn] | None = Field(None, description="several examples combined into one query (their "
                                                                "weighted sum), instead of vector")
    k: int | None = Field(None, description="results to return (default: the query string's k)")
    index: str | None = Field(None, description="index name (default: the one the service was started with)")
    rerank: str | None = Field(None, description="none, qe or dba")
    filter: str | None = Field(None, description='only images matching this filter, e.g. label = "rose" and '
                                                 'width >= 500 (docs/API.md, "Filters")')
    min_score: float | None = Field(None, description="drop results scoring below this")
    offset: int | None = Field(None, description="skip this many of the best results (a page's start)")
    page_token: str | None = Field(None, description="the next_page_token of the previous page")


class FieldsIn(BaseModel):
    fields: dict[str, str | float | int | None] = Field(
        description="user fields to set (null removes one); a new field's type is the value's (number, or "
                    "text; an ISO date string declares a date) unless types says")
    types: dict[str, str] | None = Field(None, description="declared types of new fields: text, number, date")


class FieldsOut(BaseModel):
    id: int
    fields: dict[str, str | float | None] = Field(description="the image's user fields after the change (dates "
                                                               "as ISO strings)")


class CatalogFieldsOut(BaseModel):
    fields: dict[str, str] = Field(description="the user fields a filter can name, with their types")
    labels: list[str] = Field(description="the label names in use (sorted, at most 1,000)")
