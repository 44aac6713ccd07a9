"""The markdown extractor the docs tests run pages with
(tests/lab/doc_commands.py): CommonMark fences, and shell commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_commands import CodeBlock, code_blocks, commands, shell_commands

PAGE = """\
# A page

```sh
zboot image create a --size 8M
```

Text with ``inline`` code and ```not a fence``` on one line.

~~~bat title=x.bat
dism /Image:C:\\mount /Add-Driver
~~~

````markdown
```sh
not a block of its own
```
````

1. A step in a list:

   ```sh
   zboot clone a pc01 \\
       --mac 52:54:00:00:00:01   # the first machine
   # a comment line
   zboot mode pc01 install --winpe 'http://x/a b'
   ```

```
a block without an info string
```

```sh
zboot unclosed --at-the-end
"""


def test_blocks_in_order_with_their_info_strings_and_lines() -> None:
    blocks = code_blocks(PAGE)
    assert [(b.info, b.language, b.line) for b in blocks] == [
        ("sh", "sh", 3),
        ("bat title=x.bat", "bat", 9),
        ("markdown", "markdown", 13),
        ("sh", "sh", 21),
        ("", "", 28),
        ("sh", "sh", 32),
    ]
    assert blocks[0].text == "zboot image create a --size 8M\n"
    assert blocks[1].text == "dism /Image:C:\\mount /Add-Driver\n"
    # a longer fence holds a shorter one; a list item's indent is gone
    assert blocks[2].text == "```sh\nnot a block of its own\n```\n"
    assert blocks[3].text.startswith("zboot clone a pc01 \\\n    --mac")
    assert blocks[5].text == "zboot unclosed --at-the-end\n"  # runs to the end of the page


def test_commands_join_continuations_and_drop_comments() -> None:
    block = code_blocks(PAGE)[3]
    got = [(c.words, c.line) for c in commands(block)]
    assert got == [
        (["zboot", "clone", "a", "pc01", "--mac", "52:54:00:00:00:01"], 22),
        (["zboot", "mode", "pc01", "install", "--winpe", "http://x/a b"], 25),
    ]


def test_shell_commands_take_the_languages_asked_for(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert [c.words[1] for c in shell_commands(page)] == ["image", "clone", "mode", "unclosed"]
    assert [c.words[0] for c in shell_commands(page, ("bat",))] == ["dism"]


def test_a_dangling_continuation_is_an_error() -> None:
    with pytest.raises(ValueError, match="continuation"):
        commands(CodeBlock("sh", "zboot list \\\n", 1))
