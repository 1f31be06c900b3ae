"""The status page's texts in English and Spanish.

A plain dictionary rather than Babel/gettext: two languages and some forty
strings do not justify a runtime dependency (DESIGN.md asks for none without a
reason). The language comes from ``FLASK_STATUS_LANGUAGE`` when set, else from
the browser's ``Accept-Language``; English is the default.
"""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.datastructures import LanguageAccept

DEFAULT_LANGUAGE = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Service status",
        "operational": "Operational",
        "degraded_performance": "Degraded performance",
        "partial_outage": "Partial outage",
        "major_outage": "Major outage",
        "no_data": "No data",
        "banner_none": "All Systems Operational",
        "banner_minor": "Degraded Performance",
        "banner_major": "Partial System Outage",
        "banner_critical": "Major System Outage",
        "banner_no_data": "No Recent Data",
        "unavailable": "Status data unavailable",
        "unavailable_help": "The status database cannot be reached right now."
        " This page will try again shortly.",
        "uptime": "Uptime",
        "days_ago": "{n} days ago",
        "minutes_ago": "{n} min ago",
        "today": "Today",
        "now": "Now",
        "last_90_days": "Last 90 days (UTC days)",
        "last_60_minutes": "Last 60 minutes (UTC)",
        "last_data": "Last data",
        "never": "never",
        "requests": "Requests",
        "failures": "Failures",
        "p95": "p95 latency",
        "incidents": "Recent incidents",
        "no_incidents": "No incidents recorded.",
        "ongoing": "ongoing",
        "resolved": "resolved",
        "started": "Started",
        "ended": "Ended",
        "duration": "Duration",
        "incident_name": "Failures on {name}",
        "updated": "Updated",
        "refreshes": "This page refreshes its data every {n} seconds.",
        "formula": "Uptime = successful requests / (successful + failed requests)."
        " Failed: 5xx and 404; other 4xx answers are the client's fault and are"
        " left out. Days are UTC days. A route's current status comes from the"
        " last {window} minutes: failure ratio ≥ {degraded}% degraded,"
        " ≥ {partial}% partial outage, ≥ {major}% major outage; no requests"
        " means no data.",
        "legend": "Legend",
        "feed": "Incident feed (Atom)",
        "json": "JSON",
        "description_window": "current status, last {window} minutes",
        "counts": "{success} successful / ({success} successful + {failure} failed)",
        "uptime_24h": "last 24 hours, from the hourly totals",
    },
    "es": {
        "title": "Estado del servicio",
        "operational": "Operativo",
        "degraded_performance": "Rendimiento degradado",
        "partial_outage": "Interrupción parcial",
        "major_outage": "Interrupción grave",
        "no_data": "Sin datos",
        "banner_none": "Todos los sistemas operativos",
        "banner_minor": "Rendimiento degradado",
        "banner_major": "Interrupción parcial del sistema",
        "banner_critical": "Interrupción grave del sistema",
        "banner_no_data": "Sin datos recientes",
        "unavailable": "Datos de estado no disponibles",
        "unavailable_help": "No se puede acceder ahora a la base de datos de estado."
        " Esta página lo volverá a intentar en breve.",
        "uptime": "Disponibilidad",
        "days_ago": "hace {n} días",
        "minutes_ago": "hace {n} min",
        "today": "Hoy",
        "now": "Ahora",
        "last_90_days": "Últimos 90 días (días UTC)",
        "last_60_minutes": "Últimos 60 minutos (UTC)",
        "last_data": "Últimos datos",
        "never": "nunca",
        "requests": "Peticiones",
        "failures": "Fallos",
        "p95": "Latencia p95",
        "incidents": "Incidentes recientes",
        "no_incidents": "No hay incidentes registrados.",
        "ongoing": "en curso",
        "resolved": "resuelto",
        "started": "Inicio",
        "ended": "Fin",
        "duration": "Duración",
        "incident_name": "Fallos en {name}",
        "updated": "Actualizado",
        "refreshes": "Esta página actualiza sus datos cada {n} segundos.",
        "formula": "Disponibilidad = peticiones correctas / (correctas + fallidas)."
        " Fallidas: 5xx y 404; las demás respuestas 4xx son culpa del cliente y no"
        " cuentan. Los días son días UTC. El estado actual de una ruta sale de los"
        " últimos {window} minutos: proporción de fallos ≥ {degraded}% degradado,"
        " ≥ {partial}% interrupción parcial, ≥ {major}% interrupción grave; sin"
        " peticiones, sin datos.",
        "legend": "Leyenda",
        "feed": "Canal de incidentes (Atom)",
        "json": "JSON",
        "description_window": "estado actual, últimos {window} minutos",
        "counts": "{success} correctas / ({success} correctas + {failure} fallidas)",
        "uptime_24h": "últimas 24 horas, de los totales por hora",
    },
}

LANGUAGES = tuple(TEXTS)


def choose_language(configured: str | None, accept: LanguageAccept | None) -> str:
    """The language to answer in.

    :param configured: ``FLASK_STATUS_LANGUAGE`` (``"en"``, ``"es"``, ``"es-ES"``…) or None.
    :param accept: the request's ``Accept-Language``, used when nothing is configured.
    """
    if configured:
        short = str(configured).strip().lower().replace("_", "-").split("-")[0]
        return short if short in TEXTS else DEFAULT_LANGUAGE
    if accept is not None:
        best = accept.best_match(LANGUAGES)
        if best:
            return best
    return DEFAULT_LANGUAGE


def texts(language: str) -> Mapping[str, str]:
    """The texts of ``language`` (English for an unknown one)."""
    return TEXTS.get(language, TEXTS[DEFAULT_LANGUAGE])
