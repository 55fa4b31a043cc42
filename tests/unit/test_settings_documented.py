"""The README's configuration table lists every setting the code reads (issue 13, "Done when").

Names come from the code, not from a list kept here: every field of the pydantic-settings tree
(``streams/settings.py``, nested models followed with the class's own ``env_nested_delimiter``,
aliases honoured) plus every ``CDRFLOW_*`` variable read directly with ``os.environ`` /
``os.getenv`` anywhere in the shipped packages.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, BaseModel
from pydantic_settings import BaseSettings

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "sinks")
# Direct reads outside the settings tree that stay there on purpose: a per-command password typed
# for one user (not a process setting, so not loadable from .env with the others), and the
# analyst-access command's copy of a name the tree also holds. A new direct read must be added to
# the tree or here, with its reason.
DIRECT_READS_ALLOWED = {
    ("streams/cli/portal.py", "CDRFLOW_PORTAL_PASSWORD"),
    ("streams/cli/clickhouse.py", "CDRFLOW_ANALYST_PASSWORD"),
}
_DIRECT_READ = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*["'](CDRFLOW_[A-Z0-9_]+)["']""")
_NAME = re.compile(r"`(CDRFLOW_[A-Z0-9_]+)`")


def _model_of(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():   # Optional[Sub] / Sub | None
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def settings_env_names(cls: type[BaseSettings] = Settings) -> set[str]:
    config = cls.model_config
    prefix = config.get("env_prefix", "")
    delimiter = config.get("env_nested_delimiter")
    upper = not config.get("case_sensitive", False)

    def walk(model: type[BaseModel], stem: str, top: bool) -> set[str]:
        out: set[str] = set()
        for name, field in model.model_fields.items():
            alias = field.validation_alias or field.alias
            if isinstance(alias, AliasChoices):
                keys = [c for c in alias.choices if isinstance(c, str)]
            elif isinstance(alias, str):
                keys = [alias]
            else:
                keys = [f"{prefix}{name}" if top else name]
            sub = _model_of(field.annotation)
            for key in keys[:1]:           # the first choice is the documented name
                full = key if top else f"{stem}{delimiter}{key}"
                if sub is not None and delimiter:
                    out |= walk(sub, full, False)
                out.add(full.upper() if upper else full)
        return out

    return walk(cls, "", True)


def direct_reads() -> set[tuple[str, str]]:
    found = set()
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "streams/settings.py":
                continue
            for name in _DIRECT_READ.findall(path.read_text(encoding="utf-8")):
                found.add((rel, name))
    return found


def readme_table_names() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and line.count("|") >= 4:
            names |= set(_NAME.findall(line.split("|")[1]))   # the variable column only
    return names


def test_the_walk_finds_plain_nested_and_aliased_fields():
    # Guards the walker itself: a tree that would hide names from the README check.
    from pydantic import Field
    from pydantic_settings import SettingsConfigDict

    class Tls(BaseModel):
        cafile: str | None = None

    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="CDRFLOW_", env_nested_delimiter="__")
        port: int = 1
        tls: Tls | None = None
        legacy: str = Field(default="x", validation_alias="CDRFLOW_OLD_NAME")

    assert settings_env_names(Demo) == {"CDRFLOW_PORT", "CDRFLOW_TLS", "CDRFLOW_TLS__CAFILE", "CDRFLOW_OLD_NAME"}


def test_every_setting_the_code_reads_is_in_the_readme_configuration_table():
    documented = readme_table_names()
    read = settings_env_names() | {name for _, name in direct_reads()}
    missing = sorted(read - documented)
    assert not missing, f"README.md ## Configuration table lacks: {missing}"


def test_the_readme_table_names_only_settings_that_exist():
    stale = sorted(readme_table_names() - settings_env_names() - {n for _, n in direct_reads()})
    assert not stale, f"README.md ## Configuration table documents variables nothing reads: {stale}"


def test_cdrflow_variables_are_read_through_the_settings_tree():
    stray = sorted(direct_reads() - DIRECT_READS_ALLOWED)
    assert not stray, f"read CDRFLOW_* through streams/settings.py instead of os.environ: {stray}"
