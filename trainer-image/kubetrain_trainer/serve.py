"""The HTTP predictor: the trainer image serving one model (`python -m kubetrain_trainer serve`),
in the KServe / TF-Serving v1 protocol, so KServe's InferenceService, a plain Deployment or any v1
client can call it:

- `POST /v1/models/<name>:predict` `{"instances": [...]}` -> `{"predictions": [...]}`, each
  instance and prediction as the model card's schema says (kubetrain_trainer.predict);
- `GET /v1/models/<name>`: the model's readiness and version (the card's job and weights digest);
- `GET /healthz` (liveness) and `GET /readyz` (readiness: the model is loaded, which it is before
  the server listens).

The standard library's threading server: one dependency less in the image, and a classifier's
forward pass on a CPU is the request's cost, not the HTTP parsing."""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubetrain_trainer import logs, predict
from kubetrain_trainer.errors import TrainerFailure
from kubetrain_trainer.llm.predict import Generation, GenerativePredictor
from kubetrain_trainer.predict import Prediction

MAX_BODY_BYTES = 32 * 1024 * 1024


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instances: list[Any] = Field(min_length=1)


class PredictResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    predictions: list[Prediction] | list[Generation]


class ModelStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    ready: bool
    version: str = Field(description="The sha256 of the served weights, as the ModelVersion records it.")
    job: dict[str, Any]


def model_status(name: str, predictor: predict.Predictor | GenerativePredictor) -> ModelStatus:
    return ModelStatus(
        name=name, ready=True, version=f"sha256:{predictor.card['weights']['sha256']}", job=predictor.card["job"]
    )


class Handler(BaseHTTPRequestHandler):
    """One request; the server carries the model (`server.predictor`, `server.model_name`)."""

    server: PredictorServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        if self.path in ("/healthz", "/readyz"):
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif self.path == f"/v1/models/{self.server.model_name}":
            self._send(HTTPStatus.OK, model_status(self.server.model_name, self.server.predictor).model_dump())
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; the model is {self.server.model_name}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != f"/v1/models/{self.server.model_name}:predict":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; POST "
                                                       f"/v1/models/{self.server.model_name}:predict"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            request = PredictRequest.model_validate_json(self.rfile.read(length))
            predictions = self.server.predictor.predict(request.instances)
        except ValidationError as error:
            problem = error.errors()[0]["msg"]
            self._send(HTTPStatus.BAD_REQUEST, {"error": f'expected {{"instances": [...]}}: {problem}'})
            return
        except TrainerFailure as failure:
            self._send(HTTPStatus.BAD_REQUEST, {"error": failure.message})
            return
        self._send(HTTPStatus.OK, PredictResponse(predictions=predictions).model_dump())

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        logs.info("request", line=format % args)


class PredictorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], model_name: str, predictor: predict.Predictor | GenerativePredictor
    ) -> None:
        super().__init__(address, Handler)
        self.model_name = model_name
        self.predictor = predictor


def serve(model_uri: str, weights_digest: str | None, model_name: str, host: str, port: int) -> None:
    """Loads the model, then listens until killed: a pod is ready once the port answers."""
    predictor = predict.load(model_uri, weights_digest)
    server = PredictorServer((host, port), model_name, predictor)
    logs.info("serving", model=model_name, uri=model_uri, address=f"{host}:{server.server_address[1]}",
              version=f"sha256:{predictor.card['weights']['sha256']}")
    server.serve_forever()
