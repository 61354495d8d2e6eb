"""The three fieldsync forms as one declarative table, read both ways: ``xforms`` renders it as
ODK XForms and ``instances`` reads a submitted instance back with it. A field's instance path is
the path of the same value in the JSON report (``enterprise/credit_code`` ↔
``enterprise.credit_code``), so an instance maps onto ``ReportWrite`` without a rule of its own.
Only two fields are shaped differently: the geopoint ``location`` (``lat lon altitude accuracy``)
with ``address`` beside it fills ``location``, and the repeat ``photos`` (an image and a caption
each) fills ``media`` with the kind's photo role.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

FieldType = Literal["string", "select1", "int", "decimal", "geopoint", "dateTime"]
Kind = Literal["hazard", "disaster", "accident"]

CREDIT_CODE_REGEX = "^[0-9A-HJ-NPQRTUWXY]{18}$"
UUID_REGEX = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
COUNT_CONSTRAINT = ". >= 0 and . <= 100000000"
AMOUNT_CONSTRAINT = ". >= 0 and . <= 1000000000000000"
NON_NEGATIVE = ("不能为负数", "Must not be negative")


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    path: str  # below the instance root; also the report's JSON path with '/' for '.'
    type: FieldType
    label: tuple[str, str]  # (Chinese, English)
    required: bool = False
    choices: str | None = None  # a list name: 'categories', 'jurisdictions' or a key of FIXED_CHOICES
    constraint: str | None = None
    constraint_msg: tuple[str, str] | None = None
    hint: tuple[str, str] | None = None
    default: Literal["now", "uuid", "home"] | None = None
    appearance: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    path: str
    label: tuple[str, str]
    fields: tuple[Field, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class FormSpec:
    form_id: str
    kind: Kind
    title: tuple[str, str]
    items: tuple[Field | Group, ...]
    photo_role: Literal["photo", "before"]
    photos_label: tuple[str, str]


FIXED_CHOICES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "severity": (("red", "红色", "Red"), ("orange", "橙色", "Orange"), ("yellow", "黄色", "Yellow"),
                 ("blue", "蓝色", "Blue")),
    "grade": (("general", "一般隐患", "General"), ("major", "重大隐患", "Major")),
    "stage": (("initial", "初报", "Initial report"), ("update", "续报", "Update"), ("final", "核报", "Final report")),
}


def _count(path: str, zh: str, en: str) -> Field:
    return Field(path, "int", (zh, en), constraint=COUNT_CONSTRAINT, constraint_msg=NON_NEGATIVE)


def _amount(path: str, zh: str, en: str) -> Field:
    return Field(path, "decimal", (zh, en), constraint=AMOUNT_CONSTRAINT, constraint_msg=NON_NEGATIVE)


COMMON_HEAD: tuple[Field, ...] = (
    Field("category", "select1", ("类别", "Category"), required=True, choices="categories"),
    Field("title", "string", ("标题", "Title"), required=True,
          hint=("一句话说明发现了什么", "One line on what was found"),
          constraint="string-length(.) <= 200", constraint_msg=("最多 200 个字", "At most 200 characters")),
    Field("description", "string", ("详细描述", "Description"), appearance="multiline"),
    Field("jurisdiction", "select1", ("所在行政区", "Jurisdiction"), required=True, choices="jurisdictions",
          default="home"),
    Field("location", "geopoint", ("位置", "Location"), required=True),
    Field("address", "string", ("地址", "Address")),
    Field("observed_at", "dateTime", ("发现时间", "Observed at"), required=True, default="now"),
    Field("severity", "select1", ("预警等级", "Warning level"), choices="severity"),
)

ENTERPRISE = Group("enterprise", ("企业", "Enterprise"), (
    Field("enterprise/name", "string", ("企业名称", "Enterprise name"), required=True),
    Field("enterprise/credit_code", "string", ("统一社会信用代码", "Unified social credit code"), required=True,
          constraint=f"regex(., '{CREDIT_CODE_REGEX}')",
          constraint_msg=("18 位统一社会信用代码（数字与大写字母，不含 I、O、Z、S、V）",
                          "18 characters: digits and capital letters except I, O, Z, S, V")),
    Field("enterprise/industry", "string", ("行业", "Industry")),
))

FORMS: dict[str, FormSpec] = {
    spec.form_id: spec
    for spec in (
        FormSpec(
            "fieldsync_hazard", "hazard", ("隐患排查", "Hazard"),
            (*COMMON_HEAD, ENTERPRISE,
             Field("grade", "select1", ("隐患等级", "Hazard grade"), required=True, choices="grade")),
            "before", ("整改前照片", "Photos before rectification"),
        ),
        FormSpec(
            "fieldsync_disaster", "disaster", ("灾情报送", "Disaster"),
            (*COMMON_HEAD,
             Field("incident_id", "string", ("灾害过程编号", "Incident id"), required=True, default="uuid",
                   constraint=f"regex(., '{UUID_REGEX}')",
                   constraint_msg=("须为初报的过程编号（UUID）", "The incident id of the initial report (a UUID)"),
                   hint=("续报、核报请填写初报的过程编号", "For an update or final report, enter the initial report's id")),
             Field("stage", "select1", ("报送阶段", "Stage"), required=True, choices="stage"),
             Field("as_of", "dateTime", ("数据截止时间", "Figures as of"), required=True, default="now"),
             Group("losses", ("灾情损失", "Losses"), (
                 _count("losses/deaths", "死亡人数", "Deaths"),
                 _count("losses/missing", "失踪人数", "Missing"),
                 _count("losses/injured", "受伤人数", "Injured"),
                 _count("losses/affected_people", "受灾人口", "People affected"),
                 _count("losses/evacuated_people", "紧急转移安置人口", "People evacuated"),
                 _count("losses/houses_collapsed", "倒塌房屋（间）", "Houses collapsed"),
                 _count("losses/houses_damaged", "损坏房屋（间）", "Houses damaged"),
                 _amount("losses/crop_area_ha", "农作物受灾面积（公顷）", "Crop area affected (ha)"),
                 _amount("losses/direct_loss_cny", "直接经济损失（元）", "Direct loss (CNY)"),
             ))),
            "photo", ("现场照片", "Scene photos"),
        ),
        FormSpec(
            "fieldsync_accident", "accident", ("生产安全事故", "Accident"),
            (*COMMON_HEAD, ENTERPRISE,
             _count("deaths", "死亡人数", "Deaths"),
             _count("injured", "受伤人数", "Injured"),
             _amount("direct_loss_cny", "直接经济损失（元）", "Direct loss (CNY)")),
            "photo", ("现场照片", "Scene photos"),
        ),
    )
}

PHOTOS = "photos"
PHOTO = "photos/photo"
CAPTION = "photos/caption"


def fields_of(spec: FormSpec) -> list[Field]:
    """Every field of a form in document order, groups flattened."""
    flat: list[Field] = []
    for item in spec.items:
        flat.extend(item.fields if isinstance(item, Group) else (item,))
    return flat
