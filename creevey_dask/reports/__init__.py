"""Visual reports of result tables, drawn with Pillow only: contact sheets (``sheets``),
summary tables and figures (``summary``), the drawing helpers (``charts``)."""
