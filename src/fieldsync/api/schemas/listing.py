"""Wire types of the supervisors' list (``GET /v1/reports``) and the columns of the export
(``GET /v1/export``): one table that names each column for CSV (Chinese and English, for Excel
and WPS users) and for GeoJSON (snake_case properties, for QGIS and scripts)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import msgspec

from fieldsync.api.schemas.reports import ReportRead


class ReportPage(msgspec.Struct):
    items: list[ReportRead]
    next_cursor: str | None


# text: free text someone typed (a CSV cell starting like a formula is neutralised); code: an id, a
# code or a device's RFC 3339 time, never free text.
ValueType = Literal["text", "code", "integer", "number", "time", "boolean"]


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    key: str  # the export row's column and the GeoJSON property name
    header: str  # the CSV header: Chinese, then English
    type: ValueType = "code"


EXPORT_COLUMNS: tuple[Column, ...] = (
    Column("id", "编号 id"),
    Column("kind", "类型 kind"),
    Column("category", "类别代码 category"),
    Column("category_name", "类别 category name", "text"),
    Column("title", "标题 title", "text"),
    Column("description", "描述 description", "text"),
    Column("jurisdiction", "行政区划代码 jurisdiction"),
    Column("jurisdiction_name", "行政区划 jurisdiction name", "text"),
    Column("lat", "纬度 latitude", "number"),
    Column("lon", "经度 longitude", "number"),
    Column("accuracy_m", "定位精度(米) accuracy (m)", "number"),
    Column("altitude_m", "海拔(米) altitude (m)", "number"),
    Column("address", "地址 address", "text"),
    Column("observed_at", "发现时间 observed at"),
    Column("received_at", "接收时间 received at", "time"),
    Column("updated_at", "更新时间 updated at", "time"),
    Column("author", "上报人 author", "text"),
    Column("version", "版本 version", "integer"),
    Column("status", "状态 status"),
    Column("severity", "预警级别 severity"),
    Column("grade", "隐患等级 grade"),
    Column("enterprise_name", "企业名称 enterprise", "text"),
    Column("credit_code", "统一社会信用代码 credit code"),
    Column("industry", "行业 industry", "text"),
    Column("incident_id", "灾害过程编号 incident id"),
    Column("stage", "报送阶段 stage"),
    Column("as_of", "统计截止时间 figures as of"),
    Column("deaths", "死亡人数 deaths", "integer"),
    Column("missing", "失踪人数 missing", "integer"),
    Column("injured", "受伤人数 injured", "integer"),
    Column("affected_people", "受灾人口 affected people", "integer"),
    Column("evacuated_people", "紧急转移安置人口 evacuated people", "integer"),
    Column("houses_collapsed", "倒塌房屋(间) houses collapsed", "integer"),
    Column("houses_damaged", "损坏房屋(间) houses damaged", "integer"),
    Column("crop_area_ha", "农作物受灾面积(公顷) crop area (ha)", "number"),
    Column("direct_loss_cny", "直接经济损失(元) direct loss (CNY)", "number"),
    Column("responsible_person", "整改责任人 responsible person", "text"),
    Column("rectification_deadline", "整改期限 rectification deadline", "time"),
    Column("rectified_at", "整改完成时间 rectified at", "time"),
    Column("closed_at", "销号时间 closed at", "time"),
    Column("listed_level", "挂牌督办单位 listed by"),
    Column("listed_deadline", "督办期限 listing deadline", "time"),
    Column("overdue", "是否逾期 overdue", "boolean"),
    Column("media_count", "照片数 photos", "integer"),
    Column("missing_media_count", "缺失照片数 missing photos", "integer"),
    Column("duplicate_of", "合并至 merged into"),
)

_JSON_TYPES: dict[ValueType, dict[str, Any]] = {
    "text": {"type": ["string", "null"]},
    "code": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "time": {"type": ["string", "null"], "format": "date-time"},
    "boolean": {"type": "boolean"},
}


def feature_collection_schema() -> dict[str, Any]:
    """JSON Schema of the GeoJSON export (RFC 7946): points in [longitude, latitude] order."""
    properties = {column.key: dict(_JSON_TYPES[column.type]) for column in EXPORT_COLUMNS}
    properties["id"] = {"type": "string", "format": "uuid"}
    feature = {
        "type": "object",
        "required": ["type", "id", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string", "format": "uuid"},
            "geometry": {
                "type": "object",
                "required": ["type", "coordinates"],
                "properties": {
                    "type": {"type": "string", "enum": ["Point"]},
                    "coordinates": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 2,
                        "maxItems": 2,
                        "description": "[longitude, latitude], WGS 84",
                    },
                },
            },
            "properties": {"type": "object", "properties": properties},
        },
    }
    return {
        "type": "object",
        "required": ["type", "features"],
        "properties": {
            "type": {"type": "string", "enum": ["FeatureCollection"]},
            "features": {"type": "array", "items": feature},
        },
    }
