"""A host app as users write them, for the coexistence tests.

It has its own Flask-SQLAlchemy ``db`` with models named ``Route`` and
``Log`` on tables ``routes`` and ``logs`` (the names the original project
used), its own ``templates/index.html`` and ``static/`` files, its own error
handlers and JSON settings. None of that may change when FlaskStatus is
added.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

db = SQLAlchemy()


class Route(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(200))


class Log(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id"))
    message: Mapped[str] = mapped_column(String(200))
    # Resolved by name in the host's registry: a second "Route" class in the
    # same registry would make this ambiguous.
    route: Mapped[Route] = relationship("Route")


def create_app(database_url: str, instance_path: str) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, SECRET_KEY="host-secret")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    db.init_app(app)

    @app.route("/")
    def index() -> str:
        """
        # Home
        The host's own home page.
        """
        routes = db.session.scalars(db.select(Route).order_by(Route.path)).all()
        return render_template("index.html", routes=routes)

    @app.route("/api/routes", methods=["GET", "POST"])
    def api_routes() -> Any:
        if request.method == "POST":
            data = request.get_json()
            route = Route(path=data["path"], title=data["title"])
            db.session.add(route)
            db.session.add(Log(route=route, message=f"created {data['path']}"))
            db.session.commit()
            return {"id": route.id}, 201
        rows = db.session.scalars(db.select(Log).order_by(Log.id)).all()
        return jsonify([{"path": log.route.path, "message": log.message} for log in rows])

    @app.route("/api/data")
    def data() -> dict[str, Any]:
        return {"zeta": 1, "alpha": "é"}

    @app.route("/fail")
    def fail() -> str:
        raise ValueError("host failure")

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[dict[str, str], int]:
        return {"error": "nothing here", "path": request.path}, 404

    @app.errorhandler(ValueError)
    def value_error(error: ValueError) -> tuple[str, int]:
        return render_template("error.html", message=str(error)), 500

    return app
