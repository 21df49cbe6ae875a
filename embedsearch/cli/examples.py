"""Examples shown at the end of each command's ``--help`` (its epilog), one place for all.

Kept apart from the command modules so that every command, whichever module defines it, gets
them the same way (:func:`embedsearch.cli.app.finish_commands` attaches them); each line is a
command that works as written on the README's folders. Keys are command paths.

Example:
    >>> EXAMPLES["query"].splitlines()[0]
    'Examples:'
"""

from __future__ import annotations


def _examples(*lines: str) -> str:
    # "\b" keeps click from re-wrapping the paragraph: one example a line, as typed
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


EXAMPLES: dict[str, str] = {
    "embed": _examples(
        "embedsearch embed photos/ --model simclr:resnet18 -o emb",
        "embedsearch embed photos/ --model runs/simclr --flip-average -o emb-dedup",
        "embedsearch embed pairs.csv --image-col filepath --model runs/clip -o emb-clip",
        "embedsearch embed docs.txt --model runs/clip -o emb-text   # one text a line",
        "embedsearch embed 'shards/{00000..00099}.tar' --model runs/clip -o emb   # WebDataset",
    ),
    "index": _examples(
        "embedsearch index emb -o indexes/photos",
        "embedsearch index emb -o indexes/photos --kind ivfpq --max-memory 500M",
        "embedsearch index more-emb -o indexes/photos --append",
    ),
    "query": _examples(
        "embedsearch query indexes/photos --image cat.jpg -k 5 --grid hits.png",
        "embedsearch query indexes/clip --text 'a red star' --format json",
        "embedsearch query indexes/photos --id 3",
        "embedsearch query indexes/photos --id 3 --where \"license = 'cc0'\" --min-score 0.5",
        "embedsearch query indexes/photos --queries queries.txt --format csv",
    ),
    "dedup": _examples(
        "embedsearch dedup photos/ -o dups   # a folder: pretrains, embeds, finds copies",
        "embedsearch dedup emb -o dups",
        "embedsearch dedup emb -o dups --threshold 0.97   # see dups/histogram.txt",
        "embedsearch dedup emb-train --against emb-test -o leaks",
    ),
    "info": _examples(
        "embedsearch info indexes/photos",
        "embedsearch info emb --format json",
        "embedsearch info dups   # a dedup result dir",
    ),
    "serve": _examples(
        "embedsearch serve indexes/photos   # http://127.0.0.1:8000/",
        'embedsearch serve indexes/photos --dedup dups --host 0.0.0.0 --token "$TOKEN"',
    ),
    "demo": _examples("embedsearch demo -o demo"),
    "make-corpus shapes": _examples("embedsearch make-corpus shapes -o shapes -n 600"),
    "pretrain simclr": _examples(
        "embedsearch pretrain simclr photos/ -o runs/simclr --epochs 20",
        "embedsearch pretrain simclr photos/ -o runs/simclr --epochs 40 --resume",
    ),
    "pretrain clip": _examples(
        "embedsearch pretrain clip shapes/pairs.csv -o runs/clip --epochs 4",
        "embedsearch pretrain clip pairs.csv -o runs/ft --model ViT-B-32 "
        "--pretrained laion2b_s34b_b79k",
    ),
    "delete": _examples(
        "embedsearch delete emb --sources-from dups/remove.txt   # dedup's verdict flows back",
        "embedsearch delete emb --ids 17,42",
        "embedsearch delete indexes/photos --ids 17   # edits the index's embedding dirs",
    ),
    "import": _examples(
        "embedsearch import vectors.npy --sources paths.txt --model external:clip -o emb-ext",
        "embedsearch import table.parquet --vector-col embedding --source-col path "
        "--model external:clip -o emb-ext",
    ),
}
