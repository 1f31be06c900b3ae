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
        "p50": "p50 latency",
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
        " Failed: {failed}; other 4xx answers are the client's fault and are"
        " left out. Days are UTC days. A route's current status comes from its"
        " last {window} minutes, or as many more (up to 60) as it takes to hold"
        " {min} classified requests: failure ratio ≥ {degraded}% degraded,"
        " ≥ {partial}% partial outage, ≥ {major}% major outage, though never worse"
        " than degraded on fewer than {min} requests; no classified request in 60"
        " minutes means no data.",
        "legend": "Legend",
        "feed": "Incident feed (Atom)",
        "json": "JSON",
        "description_window": "current status, last {window} minutes",
        "counts": "{success} successful / ({success} successful + {failure} failed)",
        "uptime_24h": "last 24 hours, from the hourly totals",
        "failed_5xx": "every 5xx",
        "failed_5xx_and": "5xx and {codes}",
        "failures_here": "failures here: {failed}",
        "ago": "{} ago",
        "just_now": "just now",
        "on_day": "on {day} (UTC day)",
        "ongoing_label": "Ongoing",
        "powered_by": "Powered by",
        "details": "Every day and minute",
        "back": "Back to the status page",
        "when": "When",
        "status": "Status",
        "p95_short": "p95",
        "last_90_days_table": "Last 90 days (UTC days), newest first",
        "last_60_minutes_table": "Last 60 minutes (UTC), newest first",
        "basis": "last {minutes} min, {requests} requests",
        "basis_one": "last {minutes} min, 1 request",
        "latency_now": "p95 {p95}",
        "latency_threshold": "p95 {p95} (threshold {threshold})",
        "latency_over": "over the threshold",
        "budget": "Error budget",
        "budget_left": "{left} left",
        "budget_overspent": "overspent",
        "budget_objective": "objective {target}% over {days} days",
        "budget_no_traffic": "no traffic yet",
        "burn_rates": "burn rate 1 h {h1} · 6 h {h6}",
        "paging": "Page someone: 1 h burn rate {rate}, above {limit}",
        "badge_budget": "budget",
        "badge_no_objective": "no objective",
        "badge_unknown_metric": "unknown metric",
        "formula_latency": "A p95 latency over {threshold} across the window makes a route"
        " degraded.",
        "formula_slo": "Error budget: objective {target}% over {days} UTC days; burn rate"
        " = failure ratio / (1 - objective), 1 spending the budget exactly in its window.",
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
        "p50": "Latencia p50",
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
        " Fallidas: {failed}; las demás respuestas 4xx son culpa del cliente y no"
        " cuentan. Los días son días UTC. El estado actual de una ruta sale de sus"
        " últimos {window} minutos, o de tantos más (hasta 60) como hagan falta para"
        " reunir {min} peticiones clasificadas: proporción de fallos ≥ {degraded}%"
        " degradado, ≥ {partial}% interrupción parcial, ≥ {major}% interrupción grave,"
        " pero nunca peor que degradado con menos de {min} peticiones; sin peticiones"
        " clasificadas en 60 minutos, sin datos.",
        "legend": "Leyenda",
        "feed": "Canal de incidentes (Atom)",
        "json": "JSON",
        "description_window": "estado actual, últimos {window} minutos",
        "counts": "{success} correctas / ({success} correctas + {failure} fallidas)",
        "uptime_24h": "últimas 24 horas, de los totales por hora",
        "failed_5xx": "todas las 5xx",
        "failed_5xx_and": "5xx y {codes}",
        "failures_here": "fallidas aquí: {failed}",
        "ago": "hace {}",
        "just_now": "ahora mismo",
        "on_day": "el {day} (día UTC)",
        "ongoing_label": "En curso",
        "powered_by": "Funciona con",
        "details": "Cada día y cada minuto",
        "back": "Volver a la página de estado",
        "when": "Cuándo",
        "status": "Estado",
        "p95_short": "p95",
        "last_90_days_table": "Últimos 90 días (días UTC), los más recientes primero",
        "last_60_minutes_table": "Últimos 60 minutos (UTC), los más recientes primero",
        "basis": "últimos {minutes} min, {requests} peticiones",
        "basis_one": "últimos {minutes} min, 1 petición",
        "latency_now": "p95 {p95}",
        "latency_threshold": "p95 {p95} (umbral {threshold})",
        "latency_over": "por encima del umbral",
        "budget": "Presupuesto de errores",
        "budget_left": "queda {left}",
        "budget_overspent": "agotado",
        "budget_objective": "objetivo {target}% en {days} días",
        "budget_no_traffic": "aún sin tráfico",
        "burn_rates": "tasa de consumo 1 h {h1} · 6 h {h6}",
        "paging": "Avisar a alguien: tasa de consumo en 1 h {rate}, por encima de {limit}",
        "badge_budget": "presupuesto",
        "badge_no_objective": "sin objetivo",
        "badge_unknown_metric": "métrica desconocida",
        "formula_latency": "Una latencia p95 por encima de {threshold} en la ventana degrada"
        " la ruta.",
        "formula_slo": "Presupuesto de errores: objetivo {target}% en {days} días UTC; tasa"
        " de consumo = proporción de fallos / (1 - objetivo); 1 agota el presupuesto"
        " justo al final de su ventana.",
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
