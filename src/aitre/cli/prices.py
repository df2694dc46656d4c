"""`aitre price ...`"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.billing import price_repo
from aitre.cli.common import JsonOption, console, run_db, table
from aitre.secrets import SecretBox
from aitre.store.models import Price

app = typer.Typer(no_args_is_help=True)


@app.command("set", help="Set a model's price in USD (replaces its earlier price). Model * = default.")
def set_(
    model: Annotated[
        str, typer.Argument(help="Model name as clients send it, or * for every unpriced model.")
    ],
    input: Annotated[str, typer.Option("--input", help="Per 1M input tokens.")] = "0",
    output: Annotated[str, typer.Option("--output", help="Per 1M output tokens.")] = "0",
    cached_input: Annotated[str, typer.Option(help="Per 1M cached input tokens (default: as input).")] = "",
    per_call: Annotated[str, typer.Option(help="Per request.")] = "0",
    per_image: Annotated[str, typer.Option(help="Per image.")] = "0",
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="Per image by SIZE/QUALITY=PRICE or SIZE=PRICE (repeatable)."),
    ] = None,
    per_second: Annotated[str, typer.Option(help="Per second of audio or video.")] = "0",
    per_1m_chars: Annotated[str, typer.Option(help="Per 1M characters of input (speech).")] = "0",
) -> None:
    images: dict[str, str] = {}
    for item in image or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected SIZE/QUALITY=PRICE, got {item!r}", param_hint="--image")
        images[key] = value
    fields: dict[str, Any] = {
        "input_per_1m": input,
        "output_per_1m": output,
        "cached_input_per_1m": cached_input,
        "per_call": per_call,
        "per_image": per_image,
        "image_prices": images,
        "per_second": per_second,
        "per_1m_chars": per_1m_chars,
    }

    async def work(session: AsyncSession, box: SecretBox) -> Price:
        return await price_repo.set_price(session, model, fields)

    run_db(work)
    console.print(f"price of {model} set")


@app.command("delete", help="Remove a model's price (shipped defaults apply again).")
def delete(model: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> bool:
        return await price_repo.delete_price(session, model)

    if not run_db(work):
        console.print(f"{model} had no price of its own")
        raise typer.Exit(1)
    console.print(f"price of {model} removed")


@app.command("list", help="Effective prices: shipped defaults overridden by the operator's.")
def list_(as_json: JsonOption = False) -> None:
    from aitre.billing.pricebook import PriceBook

    async def work(session: AsyncSession, box: SecretBox) -> list[Price]:
        return await price_repo.list_prices(session)

    rows = run_db(work, changes_catalog=False)
    book = PriceBook()
    book.load(rows, [])
    own = {r.model for r in rows}
    out = []
    for model, price in sorted(book.all().items()):
        p = price.as_strings()
        out.append(
            (
                model,
                "operator" if model in own else "default",
                p["input_per_1m"],
                p["output_per_1m"],
                p["cached_input_per_1m"],
                p["per_call"],
                p["per_image"],
                ",".join(f"{k}={v}" for k, v in p["image_prices"].items()),
                p["per_second"],
                p["per_1m_chars"],
            )
        )
    cols = [
        "model",
        "source",
        "input/1M",
        "output/1M",
        "cached/1M",
        "call",
        "image",
        "images",
        "second",
        "chars/1M",
    ]
    table("prices (USD)", cols, out, as_json)
