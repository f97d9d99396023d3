"""Forms of the forum pages. They carry only what a person writes: never an author, a floor, a
count or a moderation flag (those come from the session and the services)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from discussion.choices import Category
from discussion.services import BODY_MAX, TITLE_MAX


class PostForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    category = forms.ChoiceField(label=_("Category"), choices=Category.choices, initial=Category.QUESTION)
    tags = forms.CharField(
        label=_("Tags"),
        max_length=200,
        help_text=_("One to five words, separated by commas or spaces, e.g. “pytorch”, “nccl”."),
    )
    body = forms.CharField(
        label=_("Text"),
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 14, "data-markdown-editor": "1"}),
        help_text=_("Markdown. #123 links to job 123, @name mentions a user, a node's name links to the node."),
    )
    chain = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for name in ("title", "tags"):
            self.fields[name].widget.attrs["class"] = "input"
        self.fields["category"].widget.attrs["class"] = "select"
        self.fields["body"].widget.attrs["class"] = "input md-input"


class ReplyForm(forms.Form):
    body = forms.CharField(
        label=_("Your reply"),
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 6, "class": "input md-input", "data-markdown-editor": "1"}),
        help_text=_("Markdown. #123 links to job 123, @name mentions a user, a node's name links to the node."),
    )
    quote = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)


class ReportForm(forms.Form):
    reason = forms.CharField(
        label=_("What is wrong?"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "class": "input"}),
    )
