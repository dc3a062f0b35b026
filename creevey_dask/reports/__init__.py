"""Visual reports of result tables: contact sheets and summary figures (``sheets``),
drawn with Pillow only (``charts``)."""
