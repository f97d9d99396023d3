"""Forum pages. Thin: read through selectors, write through services with ``request.user`` as the
actor (nothing in the request body names a user), turn ``ApplicationError`` into form errors or a
message. Someone who may not see a post is told it does not exist (404)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import HtmxRequest
from discussion import permissions, search, selectors, services, uploads
from discussion.choices import Category, Moderation, PostOrder, ReportAction, ReportStatus
from discussion.forms import PostForm, ReplyForm, ReportForm
from discussion.markdown import render as render_markdown
from discussion.models import Post, Reply, Report

PAGE_SIZE = 20


class SignedInRequest(HtmxRequest):
    user: User


def _form_errors(form: PostForm | ReplyForm, error: ApplicationError) -> None:
    """Put a service's field messages on the form (the rest as a form-wide error)."""
    placed = False
    for field, field_messages in error.fields.items():
        if field in form.fields:
            for message in field_messages:
                form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


def _visible_post(request: SignedInRequest, pk: int) -> Post:
    post = selectors.post_detail(user=request.user, pk=pk)
    if post is None:
        raise Http404(_("No such post."))
    return post


def _visible_reply(request: SignedInRequest, pk: int) -> Reply:
    reply = selectors.reply_of(user=request.user, pk=pk)
    if reply is None:
        raise Http404(_("No such reply."))
    return reply


@login_required
def post_list_view(request: SignedInRequest) -> HttpResponse:
    order = request.GET.get("order", PostOrder.LATEST)
    if order not in PostOrder.values:
        order = PostOrder.LATEST
    filters = selectors.PostFilters(
        order=order,
        tag=request.GET.get("tag", "")[:32],
        category=request.GET.get("category", ""),
        author=request.GET.get("author", "")[:150],
    )
    page = Paginator(selectors.post_list(user=request.user, filters=filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "page": page,
        "filters": filters,
        "orders": PostOrder.choices,
        "categories": Category.choices,
        "tags": selectors.popular_tags(),
    }
    return render(request, "discussion/post_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def post_create_view(request: SignedInRequest) -> HttpResponse:
    if request.method == "POST":
        form = PostForm(request.POST)
        if form.is_valid():
            try:
                post = services.post_create(
                    actor=request.user,
                    title=form.cleaned_data["title"],
                    body=form.cleaned_data["body"],
                    category=form.cleaned_data["category"],
                    tags=form.cleaned_data["tags"],
                    chain_id=form.cleaned_data["chain"],
                )
            except ApplicationError as error:
                _form_errors(form, error)
            else:
                return redirect("discussion:post-detail", pk=post.pk)
    else:
        chain = request.GET.get("chain", "")
        initial: dict[str, object] = {}
        if chain.isdigit():
            initial = {"chain": int(chain), "title": _("About job #%(id)s: ") % {"id": chain}, "category": "jobs"}
            initial["body"] = _("Job #%(id)s") % {"id": chain} + "\n\n"
        form = PostForm(initial=initial)
    linked = form["chain"].value()
    return render(request, "discussion/post_form.html", {"form": form, "post": None, "linked_chain": linked})


@login_required
@require_http_methods(["GET"])
def post_detail_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    if not post.is_deleted:
        services.post_view_record(actor=request.user, post=post)
    quote = request.GET.get("quote", "")
    return _detail(request, post, ReplyForm(), quote_id=int(quote) if quote.isdigit() else None)


def _detail(
    request: SignedInRequest, post: Post, form: ReplyForm, *, quote_id: int | None, status: int = 200
) -> HttpResponse:
    replies = list(selectors.post_replies(post=post))
    quoting = next((r for r in replies if r.pk == quote_id and not r.is_deleted), None)
    if not form.is_bound:
        form = ReplyForm(initial={"quote": quoting.pk if quoting else None})
    liked_post, liked_replies = selectors.liked_by(user=request.user, post=post, replies=replies)
    context = {
        "post": post,
        "replies": replies,
        "form": form,
        "quoting": quoting,
        "liked_post": liked_post,
        "liked_replies": liked_replies,
        "report_form": ReportForm(),
        "moderations": Moderation,
    }
    return render(request, "discussion/post_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def post_edit_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    if not permissions.can_edit_post(request.user, post):
        raise Http404(_("No such post."))
    if request.method == "POST":
        form = PostForm(request.POST)
        if form.is_valid():
            try:
                services.post_update(
                    actor=request.user,
                    post=post,
                    title=form.cleaned_data["title"],
                    body=form.cleaned_data["body"],
                    category=form.cleaned_data["category"],
                    tags=form.cleaned_data["tags"],
                )
            except ApplicationError as error:
                _form_errors(form, error)
            else:
                messages.success(request, _("Post saved."))
                return redirect("discussion:post-detail", pk=post.pk)
    else:
        initial = {
            "title": post.title,
            "body": post.body,
            "category": post.category,
            "tags": " ".join(t.name for t in post.tags.all()),
        }
        form = PostForm(initial=initial)
    return render(request, "discussion/post_form.html", {"form": form, "post": post})


@login_required
@require_POST
def post_delete_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    if post.author_id != request.user.pk and not permissions.is_moderator(request.user):
        raise Http404(_("No such post."))
    try:
        services.post_delete(actor=request.user, post=post)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("discussion:post-detail", pk=post.pk)
    messages.success(request, _("Post deleted."))
    return redirect("discussion:post-list")


@login_required
@require_http_methods(["GET"])
def post_history_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    context = {"post": post, "reply": None, "revisions": selectors.post_revisions(post=post)}
    return render(request, "discussion/history.html", context)


@login_required
@require_POST
def reply_create_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            reply = services.reply_create(
                actor=request.user, post=post, body=form.cleaned_data["body"], quote_id=form.cleaned_data["quote"]
            )
        except NotFound as error:
            raise Http404(error.message) from error
        except ApplicationError as error:
            _form_errors(form, error)
        else:
            return redirect(reverse("discussion:post-detail", args=[post.pk]) + f"#floor-{reply.floor}")
    quote_id = form.cleaned_data.get("quote") if hasattr(form, "cleaned_data") else None
    return _detail(request, post, form, quote_id=quote_id, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def reply_edit_view(request: SignedInRequest, pk: int) -> HttpResponse:
    reply = _visible_reply(request, pk)
    if not permissions.can_edit_reply(request.user, reply):
        raise Http404(_("No such reply."))
    if request.method == "POST":
        form = ReplyForm(request.POST)
        if form.is_valid():
            try:
                services.reply_update(actor=request.user, reply=reply, body=form.cleaned_data["body"])
            except ApplicationError as error:
                _form_errors(form, error)
            else:
                messages.success(request, _("Reply saved."))
                return redirect(reverse("discussion:post-detail", args=[reply.post_id]) + f"#floor-{reply.floor}")
    else:
        form = ReplyForm(initial={"body": reply.body})
    return render(request, "discussion/reply_form.html", {"form": form, "reply": reply, "post": reply.post})


@login_required
@require_POST
def reply_delete_view(request: SignedInRequest, pk: int) -> HttpResponse:
    reply = _visible_reply(request, pk)
    if reply.author_id != request.user.pk and not permissions.is_moderator(request.user):
        raise Http404(_("No such reply."))
    try:
        services.reply_delete(actor=request.user, reply=reply)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Reply deleted."))
    return redirect(reverse("discussion:post-detail", args=[reply.post_id]) + f"#floor-{reply.floor}")


@login_required
@require_http_methods(["GET"])
def reply_history_view(request: SignedInRequest, pk: int) -> HttpResponse:
    reply = _visible_reply(request, pk)
    context = {"post": reply.post, "reply": reply, "revisions": selectors.reply_revisions(reply=reply)}
    return render(request, "discussion/history.html", context)


def _back_to(post_id: int, floor: int | None = None) -> str:
    url = reverse("discussion:post-detail", args=[post_id])
    return url + (f"#floor-{floor}" if floor else "#post")


def _like_response(request: SignedInRequest, state: services.LikeState, url: str, fallback: str) -> HttpResponse:
    if request.htmx:
        return render(
            request, "discussion/partials/like_button.html", {"liked": state.liked, "count": state.count, "url": url}
        )
    return redirect(fallback)


@login_required
@require_POST
def post_like_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    try:
        state = services.like_toggle(actor=request.user, post=post)
    except NotFound as error:
        raise Http404(error.message) from error
    return _like_response(request, state, reverse("discussion:post-like", args=[post.pk]), _back_to(post.pk))


@login_required
@require_POST
def reply_like_view(request: SignedInRequest, pk: int) -> HttpResponse:
    reply = _visible_reply(request, pk)
    try:
        state = services.like_toggle(actor=request.user, reply=reply)
    except NotFound as error:
        raise Http404(error.message) from error
    url = reverse("discussion:reply-like", args=[reply.pk])
    return _like_response(request, state, url, _back_to(reply.post_id, reply.floor))


@login_required
@require_POST
def post_moderate_view(request: SignedInRequest, pk: int) -> HttpResponse:
    post = _visible_post(request, pk)
    if not permissions.is_moderator(request.user):
        raise Http404(_("No such post."))
    try:
        services.post_moderate(actor=request.user, post=post, action=request.POST.get("action", ""))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Done."))
    return redirect(_back_to(post.pk))


def _report(request: SignedInRequest, post: Post, reply: Reply | None) -> HttpResponse:
    form = ReportForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say what is wrong, so moderators know what to look at."))
    else:
        try:
            if reply is None:
                services.report_create(actor=request.user, post=post, reason=form.cleaned_data["reason"])
            else:
                services.report_create(actor=request.user, reply=reply, reason=form.cleaned_data["reason"])
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("Thank you. The moderators will look at it."))
    return redirect(_back_to(post.pk, reply.floor if reply else None))


@login_required
@require_POST
def post_report_view(request: SignedInRequest, pk: int) -> HttpResponse:
    return _report(request, _visible_post(request, pk), None)


@login_required
@require_POST
def reply_report_view(request: SignedInRequest, pk: int) -> HttpResponse:
    reply = _visible_reply(request, pk)
    return _report(request, reply.post, reply)


def _require_moderator(request: SignedInRequest) -> None:
    """Moderation pages do not exist for anyone else (404, like a post one may not see)."""
    if not permissions.is_moderator(request.user):
        raise Http404(_("No such page."))


@login_required
@require_http_methods(["GET"])
def moderation_queue_view(request: SignedInRequest) -> HttpResponse:
    _require_moderator(request)
    status = request.GET.get("status", ReportStatus.OPEN)
    if status not in ReportStatus.values:
        status = ReportStatus.OPEN
    page = Paginator(selectors.report_queue(status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "status": status, "statuses": ReportStatus.choices, "actions": ReportAction.choices}
    return render(request, "discussion/moderation.html", context)


@login_required
@require_POST
def report_resolve_view(request: SignedInRequest, pk: int) -> HttpResponse:
    _require_moderator(request)
    report = Report.objects.filter(pk=pk).first()
    if report is None:
        raise Http404(_("No such report."))
    try:
        services.report_resolve(actor=request.user, report=report, action=request.POST.get("action", ""))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Report closed."))
    return redirect("discussion:moderation")


@login_required
@require_http_methods(["GET"])
def search_view(request: SignedInRequest) -> HttpResponse:
    text = request.GET.get("q", "").strip()[:200]
    sort = request.GET.get("sort", search.SearchSort.RELEVANCE)
    if sort not in search.SearchSort.ALL:
        sort = search.SearchSort.RELEVANCE
    page_number = request.GET.get("page", "1")
    query = search.SearchRequest(
        text=text,
        user=request.user,
        tag=request.GET.get("tag", "")[:32],
        category=request.GET.get("category", "") if request.GET.get("category") in Category.values else "",
        sort=sort,
        page=min(int(page_number), 500) if page_number.isdigit() and int(page_number) > 0 else 1,
    )
    results = search.get_backend().search(query) if text else search.SearchPage()
    posts = Post.objects.in_bulk([hit.post_id for hit in results.hits])
    rows = [(hit, posts[hit.post_id]) for hit in results.hits if hit.post_id in posts]
    context = {
        "query": query,
        "results": results,
        "rows": rows,
        "categories": Category.choices,
        "sorts": [
            (search.SearchSort.RELEVANCE, _("Best match")),
            (search.SearchSort.NEWEST, _("Newest")),
            (search.SearchSort.ACTIVE, _("Recently active")),
        ],
    }
    return render(request, "discussion/search.html", context)


@login_required
@require_http_methods(["GET"])
def node_view(request: SignedInRequest, name: str) -> HttpResponse:
    """Where a node's name in a post links to: the node as every user may see it (name, group,
    GPUs, state) and the newest posts the search finds for its name."""
    node = selectors.node_named(name=name)
    if node is None:
        raise Http404(_("No such node."))
    query = search.SearchRequest(text=node.name, user=request.user, sort=search.SearchSort.NEWEST, page_size=10)
    results = search.get_backend().search(query)
    posts = Post.objects.in_bulk([hit.post_id for hit in results.hits])
    rows = [(hit, posts[hit.post_id]) for hit in results.hits if hit.post_id in posts]
    return render(request, "discussion/node.html", {"node": node, "results": results, "rows": rows})


@login_required
@require_POST
def image_upload_view(request: SignedInRequest) -> HttpResponse:
    """Upload an image; answers JSON ``{"url", "markdown"}`` (the editor inserts it), or the error."""
    upload = request.FILES.get("image")
    if upload is None:
        message = _("Choose an image file.")
        return JsonResponse(
            {"error": {"code": "invalid", "message": message, "fields": {"image": [message]}}}, status=400
        )
    try:
        image = uploads.image_upload(actor=request.user, upload=upload)
    except ApplicationError as error:
        body = {"error": {"code": error.code, "message": error.message, "fields": error.fields}}
        return JsonResponse(body, status=error.status)
    return JsonResponse({"url": image.url, "markdown": f"![]({image.url})"}, status=201)


@login_required
@require_http_methods(["GET"])
def image_view(request: SignedInRequest, path: str) -> FileResponse:
    """An uploaded image, as the type it was found to be, never rendered as anything else."""
    found = uploads.image_path(path)
    if found is None:
        raise Http404(_("No such image."))
    content_type = uploads.CONTENT_TYPES[found.suffix.lstrip(".")]
    response = FileResponse(found.open("rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Content-Disposition"] = "inline"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
@require_POST
def preview_view(request: SignedInRequest) -> HttpResponse:
    """The editor's preview: the Markdown rendered exactly as it will be stored (sanitised)."""
    text = request.POST.get("body", "")[: services.BODY_MAX]
    return HttpResponse(render_markdown(text).html, content_type="text/html; charset=utf-8")
